"""Reading and writing a bundle folder: `manifest.json` with every file's sha256, verified on load.

A bundle is a folder holding `manifest.json` and the files its `files` section lists (name -> sha256).
Writing is atomic (a temporary file moved into place); reading migrates earlier schema versions and,
with `verify`, refuses a file that is missing or was altered after export.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from edgekd.bundle.manifest import SCHEMA_VERSION, Manifest, migrate
from edgekd.errors import EdgekdError

MANIFEST = "manifest.json"
VALIDATION_FILE = "validation.npz"
CALIBRATION_FILE = "calibration_images.npy"
EXAMPLES_DIR = "examples"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Hash every file the manifest lists under `files` and write `manifest.json` atomically."""
    manifest.files = {name: sha256_of(folder / name) for name in sorted(manifest.files)}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.to_json_dict(), indent=2))
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST


def is_bundle(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def read_manifest(folder: str | Path, *, verify: bool = True) -> Manifest:
    """The manifest of the bundle in `folder`; with `verify`, every listed file must match its hash."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        hint = " (it holds a training run: export it with `edgekd export`)" if (folder / "results.json").is_file() else ""
        raise EdgekdError(f"{folder} is not an edgekd bundle: {MANIFEST} is missing{hint}")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EdgekdError(f"{path} is damaged ({err}); export the bundle again") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise EdgekdError(f"{path} has bundle schema version {version}; this edgekd reads versions 1 to {SCHEMA_VERSION}. "
                          f"Export the bundle with this edgekd version, or upgrade edgekd")
    try:
        manifest = Manifest.model_validate(migrate(raw))
    except (ValidationError, KeyError, TypeError) as err:
        raise EdgekdError(f"{path} is not a valid bundle manifest ({_first_error(err)}); export the bundle again") from None
    if verify:
        for name, expected in manifest.files.items():
            file = folder / name
            if not file.is_file():
                raise EdgekdError(f"bundle file {file} is missing; export the bundle again")
            if sha256_of(file) != expected:
                raise EdgekdError(f"bundle file {file} does not match its sha256 in {MANIFEST}: it was truncated or "
                                  f"altered after export. Export the bundle again")
    return manifest


def _first_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return f"{type(err).__name__}: {err}"


def load_validation_sample(folder: Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """The validation sample stored at export: uint8 pixels (N, 3, H, W) and labels."""
    if manifest.validation_sample is None:
        raise EdgekdError(f"{folder} stores no validation images (the run's data was not available at export); "
                          f"pass --data with the dataset's folder")
    with np.load(folder / manifest.validation_sample.file) as stored:
        return stored["images"], stored["labels"]


def load_calibration_sample(folder: Path, manifest: Manifest) -> np.ndarray:
    """The INT8 calibration images stored at export: uint8 pixels (N, 3, H, W)."""
    if manifest.calibration_sample is None:
        raise EdgekdError(f"{folder} stores no calibration images; export the run with --format onnx-int8, which stores "
                          f"them in the bundle")
    return np.load(folder / manifest.calibration_sample.file)
