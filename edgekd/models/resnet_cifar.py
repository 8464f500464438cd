"""CIFAR ResNets of depth 6n+2 (resnet20/32/56/110, resnet8x4, resnet32x4), RepDistiller layout.

Stem conv3x3-BN-ReLU, then three stages at 32, 16 and 8 px; the stem is folded into stage 1.
"""
from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock

from edgekd.models.backbone import Backbone, pool_linear, scaled
from edgekd.models.registry import MODELS


def _stage(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
    layers = [BasicBlock(in_ch, out_ch, stride, downsample)]
    layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def cifar_resnet(depth: int, widths: list[int], *, num_classes: int, width: float = 1.0, **_: object) -> Backbone:
    """A 6n+2 BasicBlock ResNet with `widths` = [stem, stage1, stage2, stage3]."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    w = [scaled(c, width) for c in widths]
    stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
    stages = [
        nn.Sequential(stem, _stage(w[0], w[1], n, 1)),
        _stage(w[1], w[2], n, 2),
        _stage(w[2], w[3], n, 2),
    ]
    return Backbone(stages, pool_linear(w[3], num_classes), stem_first=True)


def _register(name: str, depth: int, widths: list[int]) -> None:
    def build(**cfg: object) -> Backbone:
        return cifar_resnet(depth, widths, **cfg)  # type: ignore[arg-type]

    build.__doc__ = f"CIFAR {name}: depth {depth}, widths {widths}."
    MODELS.register(name)(build)


for _depth in (20, 32, 56, 110):
    _register(f"resnet{_depth}", _depth, [16, 16, 32, 64])
_register("resnet8x4", 8, [32, 64, 128, 256])
_register("resnet32x4", 32, [32, 64, 128, 256])
