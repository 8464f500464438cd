"""ResNet-10/18/34/50/101/152 built from torchvision's blocks.

For inputs <= 64 px the stem is a 3x3 stride-1 conv with no max-pool (as in BYOT and the
CIFAR KD literature); larger inputs get torchvision's 7x7 stride-2 stem and max-pool.
The last BatchNorm of every residual block starts at zero (torchvision's `zero_init_residual`),
so a deep, narrow net starts as a shallow one and trains from scratch in few steps.
"""
from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from edgekd.models.backbone import Backbone, pool_linear, scaled
from edgekd.models.registry import MODELS

SMALL_INPUT_MAX = 64

LAYOUTS: dict[str, tuple[type[nn.Module], list[int]]] = {
    "resnet10": (BasicBlock, [1, 1, 1, 1]),
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


def _stage(block: type, in_ch: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    out_ch = planes * block.expansion
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
    layers = [block(in_ch, planes, stride, downsample)]
    layers += [block(out_ch, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers), out_ch


def resnet(name: str, *, num_classes: int, image_size: int = 32, width: float = 1.0, **_: object) -> Backbone:
    """Four stages of widths 64/128/256/512 (x expansion) times `width`; stem folded into stage 1."""
    block, layers = LAYOUTS[name]
    stem_ch = scaled(64, width)
    if image_size <= SMALL_INPUT_MAX:
        stem = nn.Sequential(nn.Conv2d(3, stem_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_ch), nn.ReLU(inplace=True))
    else:
        stem = nn.Sequential(
            nn.Conv2d(3, stem_ch, 7, 2, 3, bias=False), nn.BatchNorm2d(stem_ch), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
    stages, in_ch = [], stem_ch
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        stage, in_ch = _stage(block, in_ch, scaled(planes, width), blocks, 1 if i == 0 else 2)
        stages.append(nn.Sequential(stem, stage) if i == 0 else stage)
    for module in nn.ModuleList(stages).modules():
        if isinstance(module, Bottleneck):
            nn.init.zeros_(module.bn3.weight)
        elif isinstance(module, BasicBlock):
            nn.init.zeros_(module.bn2.weight)
    return Backbone(stages, pool_linear(in_ch, num_classes), stem_first=True)


def _register(name: str) -> None:
    def build(**cfg: object) -> Backbone:
        return resnet(name, **cfg)  # type: ignore[arg-type]

    block, layers = LAYOUTS[name]
    build.__doc__ = f"{name}: {block.__name__} x {layers}."
    MODELS.register(name)(build)


for _name in LAYOUTS:
    _register(_name)
