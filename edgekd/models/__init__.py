"""Backbones, exit heads and MultiExitNet; `create_model` is the one way to build a model."""
from __future__ import annotations

from typing import Sequence, Union

from edgekd.errors import EdgekdError
from edgekd.models import mobilenetv2, resnet, resnet_cifar, vgg, wrn  # noqa: F401  (register backbones)
from edgekd.models.heads import HEADS
from edgekd.models.multi_exit import ExitInfo, ExitOutputs, MultiExitNet
from edgekd.models.registry import MODELS

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
    head: str = "bottleneck",
    image_size: int = 32,
    width: float = 1.0,
) -> MultiExitNet:
    """Build a registered backbone as a MultiExitNet (`exits='last'` for a plain classifier)."""
    backbone = MODELS.get(name)(num_classes=num_classes, image_size=image_size, width=width)
    HEADS.get(head)
    stages = resolve_exits(exits, len(backbone.stages))
    return MultiExitNet(backbone, exits=stages, head=head, num_classes=num_classes, image_size=image_size)


def list_models() -> list[str]:
    return MODELS.names()


__all__ = ["ExitInfo", "ExitOutputs", "MultiExitNet", "create_model", "list_models", "resolve_exits", "MODELS", "HEADS"]
