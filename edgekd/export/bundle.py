"""The deploy bundle's manifest: writing it, and reading it back with every file's hash verified.

Torch-free: the runtime on the device reads bundles through this module.
A bundle is a folder holding `manifest.json` and the files it lists under `files` (name -> sha256).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Hash every file the manifest lists under `files` and write `manifest.json` atomically."""
    manifest = {**manifest, "schema_version": SCHEMA_VERSION}
    manifest["files"] = {name: sha256_of(folder / name) for name in sorted(manifest.get("files", {}))}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST


def read_manifest(folder: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """The manifest of the bundle in `folder`; with `verify`, every listed file must match its hash."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        hint = " (it holds a training run: export it with `edgekd export`)" if (folder / "results.json").is_file() else ""
        raise EdgekdError(f"{folder} is not an edgekd bundle: {MANIFEST} is missing{hint}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EdgekdError(f"{path} is damaged ({err}); export the bundle again") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise EdgekdError(f"{path} has bundle schema version {version}; this edgekd reads version {SCHEMA_VERSION}. "
                          f"Export the bundle with this edgekd version")
    if verify:
        for name, expected in manifest.get("files", {}).items():
            file = folder / name
            if not file.is_file():
                raise EdgekdError(f"bundle file {file} is missing; export the bundle again")
            if sha256_of(file) != expected:
                raise EdgekdError(f"bundle file {file} does not match its sha256 in {MANIFEST}: it was truncated or "
                                  f"altered after export. Export the bundle again")
    return manifest
