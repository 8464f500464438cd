"""Exit heads placed after intermediate stages.

- `bottleneck` (BYOT): conv1x1 -> m, conv kxk stride k (k = this map's size / the final map's
  size), conv1x1 -> C, each with BN-ReLU, then pool + linear; C is the final stage's width, so a
  shallow exit sees features shaped like the deep one. BYOT uses m = C/4; edgekd uses
  m = min(C/4, C_in) so that a shallow head is never wider than the stage feeding it (otherwise
  MobileNetV2's first exit would cost three times its second).
- `linear`: global average pool + linear; nearly free, weaker.
"""
from __future__ import annotations

from torch import nn

from edgekd.models.backbone import pool_linear
from edgekd.registry import Registry

HEADS: Registry = Registry("head")


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


@HEADS.register("bottleneck")
def bottleneck_head(in_channels: int, reduction: int, final_channels: int, num_classes: int) -> nn.Module:
    """BYOT-style head: squeeze, downsample to the final map size, expand, classify."""
    mid = max(4, min(final_channels // 4, in_channels))
    layers = _conv_bn_relu(in_channels, mid)
    if reduction > 1:
        layers += _conv_bn_relu(mid, mid, reduction, reduction)
    layers += _conv_bn_relu(mid, final_channels)
    return nn.Sequential(*layers, pool_linear(final_channels, num_classes))


@HEADS.register("linear")
def linear_head(in_channels: int, reduction: int, final_channels: int, num_classes: int) -> nn.Module:
    """Global average pool + linear."""
    return pool_linear(in_channels, num_classes)
