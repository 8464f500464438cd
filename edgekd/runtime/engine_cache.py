"""Where TensorRT engines built at run time are kept: a user cache, never the bundle.

A bundle is verified file by file against its manifest, so nothing may be written into it when it is
read. onnxruntime's TensorRT provider builds an engine per graph on first use (minutes on a Jetson)
and caches it; edgekd points that cache at `$EDGEKD_CACHE` (default: `$XDG_CACHE_HOME/edgekd`, else
`~/.cache/edgekd`), one folder per bundle content and precision, so a changed bundle never meets a
stale engine. Pass `trt_engine_cache_path` in `provider_options` to put it elsewhere.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgekd.bundle.files import MANIFEST


def cache_root() -> Path:
    """edgekd's user cache folder."""
    explicit = os.environ.get("EDGEKD_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "edgekd"


def engine_cache(bundle: Path, precision: str) -> Path:
    """The folder (created) for TensorRT engines of `bundle`'s `precision` graphs: keyed by the bundle
    folder's name and a hash of its manifest, which holds every file's sha256."""
    key = hashlib.sha256((bundle / MANIFEST).read_bytes()).hexdigest()[:16]
    folder = cache_root() / "tensorrt" / f"{bundle.resolve().name}-{key}" / precision
    folder.mkdir(parents=True, exist_ok=True)
    return folder
