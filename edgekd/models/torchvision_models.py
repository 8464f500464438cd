"""torchvision classifiers (`torchvision/<name>`): every model of `torchvision.models.list_models()`.

`pretrained: true` takes the architecture's DEFAULT weights and `weights: IMAGENET1K_V2` a named set, both
through torchvision's own download; `weights: PATH` reads a plain state_dict in torchvision's parameter
names. Preprocessing comes from the weights' `transforms()` (the DEFAULT ones when the weights are a file).
ResNet-family models (ResNet, ResNeXt, Wide ResNet) are cut into their four stages; any other
torchvision model stays whole (one stage, no early exits): it can teach the logit methods.
"""
from __future__ import annotations

from typing import Any, Optional

from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.library import LibraryModel
from edgekd.bundle.preprocess import Preprocess
from edgekd.models.stage_cut import staged_backbone, whole_backbone
from edgekd.models.weights import load_weights, read_state_dict
from edgekd.registry import unknown_name_message

EXAMPLE = "resnet50"
PREFIX = "torchvision"
WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
RESNET_STAGES = ["layer1", "layer2", "layer3", "layer4"]


def list_names() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)


def check_name(name: str) -> None:
    if name not in list_names():
        raise EdgekdError(unknown_name_message("torchvision model", name, list_names()))


def is_weight_file(weights: str) -> bool:
    return weights.lower().endswith(WEIGHT_FILE_SUFFIXES) or "/" in weights


def _named_weights(name: str, weights: str) -> Any:
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    try:
        return enum[weights]
    except KeyError:
        known = ", ".join(["DEFAULT", *(w.name for w in enum)])
        raise EdgekdError(f"torchvision/{name} has no weights '{weights}'. Known: {known}; or give a weight file path") from None


def preprocess_of(name: str, weights: Optional[str] = None) -> Preprocess:
    """Mean, std, interpolation and crop fraction of the named weights' transforms (DEFAULT otherwise)."""
    check_name(name)
    chosen = _named_weights(name, weights) if weights and not is_weight_file(weights) else _named_weights(name, "DEFAULT")
    transforms = chosen.transforms()
    crop, resize = transforms.crop_size[0], transforms.resize_size[0]
    return Preprocess(mean=tuple(transforms.mean), std=tuple(transforms.std), interpolation=transforms.interpolation.value,
                      crop_pct=crop / resize)


def _classifier_name(model: nn.Module, num_classes: int) -> str:
    """The module path of the last layer that outputs the classes (fc, classifier.1, heads.head, ...)."""
    names = [name for name, module in model.named_modules()
             if isinstance(module, (nn.Linear, nn.Conv2d)) and getattr(module, "out_features", getattr(module, "out_channels", None)) == num_classes]
    if not names:
        raise EdgekdError(f"cannot find the classifier layer of this torchvision model (no layer with {num_classes} outputs)")
    return names[-1]


def build(name: str, *, num_classes: int, image_size: int, pretrained: bool, weights: Optional[str]) -> LibraryModel:
    """The torchvision model with `num_classes` outputs, its weights loaded."""
    from torchvision.models import get_model

    check_name(name)
    model = get_model(name, weights=None, num_classes=num_classes)
    named = "DEFAULT" if pretrained and not weights else weights if weights and not is_weight_file(weights) else None
    if named:
        chosen = _named_weights(name, named)
        try:
            state, source = chosen.get_state_dict(progress=True, check_hash=True), f"torchvision weights {chosen}"
        except Exception as err:  # URLError, HTTPError, OSError: the download failed
            raise EdgekdError(f"torchvision could not fetch {chosen} ({str(err).splitlines()[0]}). Offline? Download them "
                              f"once elsewhere and give `weights: path/to/{name}.pth`") from None
    elif weights:
        state, source = read_state_dict(weights), f"weights {weights}"
    fresh = load_weights(model, state, classifier=_classifier_name(model, num_classes), source=source) if named or weights else 0
    resnet_like = all(hasattr(model, stage) for stage in RESNET_STAGES) and hasattr(model, "fc")
    backbone = staged_backbone(model, RESNET_STAGES, image_size, flatten_head=True) if resnet_like else None
    return LibraryModel(backbone=backbone or whole_backbone(model), preprocess=preprocess_of(name, weights),
                        stage_features=backbone is not None, module=model, fresh_classifier=fresh)
