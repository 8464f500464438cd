"""Backbones, exit heads and MultiExitNet; `create_model` is the one way to build a model."""
from __future__ import annotations

from typing import Optional, Sequence, Union

from edgekd.errors import EdgekdError
from edgekd.models import mobilenetv2, resnet, resnet_cifar, vgg, wrn  # noqa: F401  (register backbones)
from edgekd.models.heads import HEADS, HeadSpec, head_kinds
from edgekd.models.multi_exit import ExitInfo, ExitOutputs, MultiExitNet
from edgekd.models.registry import MODELS
from edgekd.models.sources import build_library_model, library_of

ExitSpec = Union[str, Sequence[int]]


def resolve_exits(exits: ExitSpec, num_stages: int) -> list[int]:
    """'all' -> every stage, 'last' -> the final stage only, or an explicit list of stage numbers."""
    if exits == "all":
        return list(range(1, num_stages + 1))
    if exits == "last":
        return [num_stages]
    if isinstance(exits, str):
        raise EdgekdError(f"exits must be 'all', 'last' or a list of stage numbers, got '{exits}'")
    chosen = sorted(set(int(e) for e in exits))
    if not chosen or chosen[0] < 1 or chosen[-1] > num_stages:
        raise EdgekdError(f"exits {list(exits)} out of range: this model has stages 1..{num_stages}")
    if chosen[-1] != num_stages:
        chosen.append(num_stages)  # the last stage always keeps the backbone's classifier
    return chosen


def create_model(
    name: str,
    *,
    num_classes: int,
    exits: ExitSpec = "all",
    head: HeadSpec = "bottleneck",
    image_size: int = 32,
    width: float = 1.0,
    pretrained: bool = False,
    weights: Optional[str] = None,
) -> MultiExitNet:
    """Build a model as a MultiExitNet (`exits='last'` for a plain classifier): an edgekd backbone by its
    registered name, or a timm / torchvision classifier (`timm/<name>`, `torchvision/<name>`) with its
    `pretrained` or `weights` loaded (see edgekd.models.sources)."""
    head_kinds(head)
    if library_of(name) is None:
        if pretrained or weights:
            raise EdgekdError(f"'{name}' is an edgekd backbone, which has no pretrained weights; start it from an edgekd "
                              f"checkpoint with `init:`, or name a timm/ or torchvision/ model")
        backbone = MODELS.get(name)(num_classes=num_classes, image_size=image_size, width=width)
        return MultiExitNet(backbone, exits=resolve_exits(exits, len(backbone.stages)), head=head,
                            num_classes=num_classes, image_size=image_size)
    if width != 1.0:
        raise EdgekdError(f"width={width}: width scales edgekd's own backbones; {name} is built as its library defines it")
    library = build_library_model(name, num_classes=num_classes, image_size=image_size, pretrained=pretrained, weights=weights)
    stages = resolve_exits(exits, len(library.backbone.stages))
    if not library.stage_features and exits not in ("all", "last"):
        raise EdgekdError(f"{name} cannot be cut into stages (its forward is more than its layers in sequence), so it has "
                          f"no early exits: use exits: last. It can still teach the logit methods (kd, dkd, mskd, demkd)")
    net = MultiExitNet(library.backbone, exits=stages, head=head, num_classes=num_classes, image_size=image_size,
                       preprocess=library.preprocess, stage_features=library.stage_features)
    net.map_source_keys(library.module)
    net.fresh_classifier = library.fresh_classifier
    return net


def list_models() -> list[str]:
    return MODELS.names()


__all__ = ["ExitInfo", "ExitOutputs", "MultiExitNet", "create_model", "list_models", "resolve_exits", "MODELS", "HEADS"]
