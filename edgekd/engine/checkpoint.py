"""Checkpoints: written atomically (temp file + rename), refused when weights are non-finite,
and loaded with `weights_only=True` only; a corrupt or foreign file is a clear error."""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from edgekd.errors import EdgekdError

FORMAT = "edgekd-checkpoint"
VERSION = 1


def _non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    if isinstance(state, torch.Tensor):
        return [prefix] if state.is_floating_point() and not torch.isfinite(state).all() else []
    if isinstance(state, dict):
        return [name for k, v in state.items() for name in _non_finite_tensors(v, f"{prefix}.{k}" if prefix else str(k))]
    return []


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically; refuse if any model weight is NaN or infinite."""
    bad = _non_finite_tensors(state.get("model", {}), "model") + _non_finite_tensors(state.get("method", {}), "method")
    if bad:
        raise EdgekdError(f"refusing to write {path}: non-finite weights in {', '.join(bad[:5])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an edgekd checkpoint safely (`weights_only=True`); never falls back to unsafe loading."""
    path = Path(path)
    if not path.is_file():
        raise EdgekdError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, ValueError, AttributeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EdgekdError(
            f"cannot load checkpoint {path}: the file is corrupt, truncated or not an edgekd checkpoint "
            f"(it holds data that is unsafe to unpickle or unreadable: {reason[:200]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise EdgekdError(f"{path} is a PyTorch file but not an edgekd checkpoint (no '{FORMAT}' marker)")
    if state.get("version", 0) > VERSION:
        raise EdgekdError(f"{path} was written by a newer edgekd (checkpoint version {state['version']}); upgrade edgekd")
    return state
