"""Shared fixtures: where the shared CIFAR-10 images are, and a helper to run the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 300, module: str = "edgekd") -> subprocess.CompletedProcess:
    """Run `python -m <module> args...` and return the completed process (text output)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="session")
def shared_cifar10() -> Path:
    if not (SHARED_CIFAR10 / "train").is_dir():
        pytest.skip(f"the shared CIFAR-10 images are not at {SHARED_CIFAR10}")
    return SHARED_CIFAR10

