"""Where a model comes from: edgekd's own registry (`resnet18`), timm (`timm/convnext_atto`) or
torchvision (`torchvision/resnet50`). The prefix before the first slash picks the library."""
from __future__ import annotations

from types import ModuleType
from typing import Optional

from edgekd.errors import EdgekdError
from edgekd.models import timm_models, torchvision_models
from edgekd.models.library import LibraryModel
from edgekd.bundle.preprocess import Preprocess

LIBRARIES: dict[str, ModuleType] = {timm_models.PREFIX: timm_models, torchvision_models.PREFIX: torchvision_models}


def library_of(name: str) -> Optional[tuple[ModuleType, str]]:
    """(library module, its model name) for `timm/...` or `torchvision/...`; None for edgekd's own names."""
    if "/" not in name:
        return None
    prefix, model = name.split("/", 1)
    if prefix not in LIBRARIES:
        raise EdgekdError(f"unknown model source '{prefix}' in '{name}'. Sources: edgekd (no prefix), "
                          + ", ".join(f"{p}/<name>" for p in LIBRARIES))
    if not model:
        raise EdgekdError(f"'{name}' names no model after the '{prefix}/' prefix")
    return LIBRARIES[prefix], model


def check_library_name(name: str) -> None:
    """An unknown library model fails here, with the closest names, before any work."""
    found = library_of(name)
    if found is not None:
        found[0].check_name(found[1])


def library_preprocess(name: str, weights: Optional[str]) -> Optional[Preprocess]:
    """The preprocessing a library model's weights expect; None for edgekd's own backbones."""
    found = library_of(name)
    if found is None:
        return None
    library, model = found
    return library.preprocess_of(model, weights)


def build_library_model(name: str, *, num_classes: int, image_size: int, pretrained: bool,
                        weights: Optional[str]) -> LibraryModel:
    found = library_of(name)
    assert found is not None, name
    library, model = found
    return library.build(model, num_classes=num_classes, image_size=image_size, pretrained=pretrained, weights=weights)
