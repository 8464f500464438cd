"""Shared fixtures: where the shared CIFAR-10 images are, and a helper to run the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import copy

import pytest
import torch

from edgekd.engine.callbacks import Callback

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


class Snapshots(Callback):
    """Copies of the student's and the method's state after every epoch, for parameter-delta tests."""

    def __init__(self):
        self.states = []

    def on_epoch_end(self, trainer, record):
        self.states.append((copy.deepcopy(trainer.student.state_dict()), copy.deepcopy(trainer.method.state_dict())))


def changed_keys(before: dict, after: dict) -> set:
    """State-dict entries that differ (the BatchNorm step counter aside)."""
    return {k for k in after if not torch.equal(before[k], after[k]) and not k.endswith("num_batches_tracked")}
