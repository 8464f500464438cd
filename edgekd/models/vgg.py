"""VGG8/11/13 with BatchNorm, RepDistiller layout (max-pool after blocks 0-2; pool 3 only at 64 px).

Stages: [block0, pool, block1], [pool, block2], [pool, block3], [block4] -> four natural exits.
"""
from __future__ import annotations

from torch import nn

from edgekd.models.backbone import Backbone, pool_linear, scaled
from edgekd.models.registry import MODELS

CONFIGS: dict[str, list[list[int]]] = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
}


def _block(in_ch: int, widths: list[int]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for out_ch in widths:
        layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
        in_ch = out_ch
    return nn.Sequential(*layers), in_ch


def vgg(name: str, *, num_classes: int, image_size: int = 32, width: float = 1.0, **_: object) -> Backbone:
    blocks, in_ch = [], 3
    for widths in CONFIGS[name]:
        block, in_ch = _block(in_ch, [scaled(c, width) for c in widths])
        blocks.append(block)
    last = [nn.MaxPool2d(2, 2), blocks[4]] if image_size >= 64 else [blocks[4]]
    stages = [
        nn.Sequential(blocks[0], nn.MaxPool2d(2, 2), blocks[1]),
        nn.Sequential(nn.MaxPool2d(2, 2), blocks[2]),
        nn.Sequential(nn.MaxPool2d(2, 2), blocks[3]),
        nn.Sequential(*last),
    ]
    return Backbone(stages, pool_linear(in_ch, num_classes))


def _register(name: str) -> None:
    def build(**cfg: object) -> Backbone:
        return vgg(name, **cfg)  # type: ignore[arg-type]

    build.__doc__ = f"{name} with BatchNorm, blocks {CONFIGS[name]}."
    MODELS.register(name)(build)


for _name in CONFIGS:
    _register(_name)
