"""Shared fixtures: where the shared CIFAR-10 images are, the runtime's tiny bundle, and helpers to run the CLI."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekd.bundle import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"
TINY_BUNDLE = ROOT / "test-artifacts" / "runtime-fixture" / "tiny_bundle"
SHAPES_IMAGES = ROOT / "test-artifacts" / "runtime-fixture" / "shapes_images"


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 300, module: str = "edgekd") -> subprocess.CompletedProcess:
    """Run `python -m <module> args...` and return the completed process (text output)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_cli_here(*args: str) -> subprocess.CompletedProcess:
    """`edgekd args...` in this process (no interpreter start, imports shared): its exit code and what it printed."""
    from edgekd.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["edgekd", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def shared_cifar10() -> Path:
    if not (SHARED_CIFAR10 / "train").is_dir():
        pytest.skip(f"the shared CIFAR-10 images are not at {SHARED_CIFAR10}")
    return SHARED_CIFAR10



def _current(manifest: Path) -> bool:
    """The fixture bundle exists and was written in this edgekd's bundle schema (else it is built again)."""
    return manifest.is_file() and json.loads(manifest.read_text()).get("schema_version") == SCHEMA_VERSION


@pytest.fixture(scope="session")
def runtime_fixture() -> Path:
    """The tiny trained bundle the runtime and demo tests read (see tests/runtime_fixture.py): built
    here once where torch is installed, only read where it is not."""
    if not _current(TINY_BUNDLE / "manifest.json"):
        if importlib.util.find_spec("torch") is None:
            pytest.fail(f"the runtime test bundle {TINY_BUNDLE} is missing and torch is not installed to build it: "
                        f"run `python tests/runtime_fixture.py` where the training extra is installed")
        from runtime_fixture import build

        build()
    return TINY_BUNDLE
