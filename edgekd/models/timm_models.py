"""timm models (`timm/<name>`): any timm classifier, cut into stages at its `feature_info` boundaries.

`pretrained: true` downloads through timm's own mechanism (the Hugging Face hub); `weights: PATH` reads a
plain state_dict in timm's parameter names. Preprocessing comes from the model's `pretrained_cfg`.
"""
from __future__ import annotations

from typing import Optional

from edgekd.errors import EdgekdError
from edgekd.models.library import LibraryModel
from edgekd.bundle.preprocess import Preprocess
from edgekd.models.stage_cut import staged_backbone, whole_backbone
from edgekd.models.weights import load_weights, read_state_dict
from edgekd.registry import closest

EXAMPLE = "convnext_atto"
PREFIX = "timm"


def _timm():  # noqa: ANN202 (the module)
    try:
        import timm
    except ImportError:
        raise EdgekdError("timm models need timm: pip install 'edgekd[timm]'") from None
    return timm


def check_name(name: str) -> None:
    """An unknown timm architecture fails with the closest names timm knows."""
    timm = _timm()
    if not timm.is_model(name):
        known = timm.list_models()
        near = sorted({closest(name, known) or "", *timm.list_models(f"*{name.split('.')[0][:5]}*")[:4]} - {""})
        hint = f"; closest: {', '.join(near[:5])}" if near else ""
        raise EdgekdError(f"unknown timm model '{name}'{hint}. See timm.list_models() or `edgekd list models --source timm`")


def list_names() -> list[str]:
    return _timm().list_models()


def preprocess_of(name: str, weights: Optional[str] = None) -> Preprocess:
    """Mean, std, interpolation and crop fraction of the architecture's default pretrained weights (a
    weight file carries no config of its own, so `weights` does not change them)."""
    check_name(name)
    cfg = _timm().models.get_pretrained_cfg(name)
    if cfg is None:
        raise EdgekdError(f"timm model '{name}' has no pretrained config to take its preprocessing from")
    interpolation = cfg.interpolation if cfg.interpolation in ("bilinear", "bicubic", "nearest") else "bilinear"
    return Preprocess(mean=tuple(cfg.mean), std=tuple(cfg.std), interpolation=interpolation, crop_pct=float(cfg.crop_pct))


def build(name: str, *, num_classes: int, image_size: int, pretrained: bool, weights: Optional[str]) -> LibraryModel:
    """The timm model with `num_classes` outputs, its weights loaded, cut into stages where it can be."""
    timm = _timm()
    check_name(name)
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except Exception as err:  # timm wraps download failures in several exception types
        if pretrained:
            raise EdgekdError(f"timm could not fetch the pretrained weights of '{name}' ({str(err).splitlines()[0]}). "
                              f"Offline? Download them once elsewhere and give `weights: path/to/model.safetensors`") from None
        raise EdgekdError(f"timm could not build '{name}' with {num_classes} classes ({err})") from None
    fresh = 0
    if weights:
        classifier = model.pretrained_cfg.get("classifier") or "fc"
        fresh = load_weights(model, read_state_dict(weights), classifier=classifier, source=f"weights {weights}")
    elif pretrained and model.pretrained_cfg.get("num_classes", num_classes) != num_classes:
        fresh = int(model.pretrained_cfg["num_classes"])  # timm itself replaced the classifier
    boundaries = [info["module"] for info in getattr(model, "feature_info", [])]
    backbone = staged_backbone(model, boundaries, image_size) if boundaries else None
    return LibraryModel(backbone=backbone or whole_backbone(model), preprocess=preprocess_of(name),
                        stage_features=backbone is not None, module=model, fresh_classifier=fresh)
