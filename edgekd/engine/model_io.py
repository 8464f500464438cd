"""Rebuilding a model from a checkpoint: the checkpoint records how the model was built."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.engine.checkpoint import load_checkpoint
from edgekd.errors import EdgekdError
from edgekd.models import MultiExitNet, create_model
from edgekd.bundle.preprocess import Preprocess, dataset_preprocess


def model_spec(model_cfg: Any, num_classes: int, image_size: int, exit_stages: list[int]) -> dict[str, Any]:
    """The `create_model` arguments that rebuild this model exactly."""
    return {"name": model_cfg.name, "num_classes": num_classes, "exits": exit_stages,
            "head": model_cfg.head, "image_size": image_size, "width": model_cfg.width}


def load_model(path: str | Path, *, expect: dict[str, Any] | None = None) -> tuple[MultiExitNet, dict[str, Any]]:
    """The model stored in an edgekd checkpoint, plus the checkpoint; `expect` fields must match."""
    state = load_checkpoint(path)
    spec = state.get("model_spec")
    if not spec:
        raise EdgekdError(f"{path} has no model_spec; was it written by edgekd?")
    for key, wanted in (expect or {}).items():
        if spec.get(key) != wanted:
            raise EdgekdError(f"{path} holds a model with {key}={spec.get(key)!r}, but the recipe asks for {wanted!r}")
    model = create_model(**spec)
    model.load_state_dict(state["model"])
    meta = state.get("data_meta")
    if model.preprocess is None and meta:  # an edgekd backbone wants the statistics it was trained on
        model.preprocess = (Preprocess.from_dict(meta["preprocess"]) if "preprocess" in meta
                            else dataset_preprocess(tuple(meta["mean"]), tuple(meta["std"]), meta["image_size"]))
    return model, state
