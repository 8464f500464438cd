"""Exit heads placed after intermediate stages.

- `bottleneck` (BYOT): conv1x1 -> m, conv kxk stride k (k = this map's size / the final map's
  size), conv1x1 -> C, each with BN-ReLU, then pool + linear; C is the final stage's width, so a
  shallow exit sees features shaped like the deep one. BYOT uses m = C/4; edgekd uses
  m = min(C/4, C_in) so that a shallow head is never wider than the stage feeding it (otherwise
  MobileNetV2's first exit would cost three times its second).
- `strided`: the same widths as `bottleneck`, but 3x3 stride-2 convs step the map down to the
  final size one halving at a time (three where the exit's map has 8 times the final one's side),
  then conv1x1 -> C, pool + linear. Deeper than `bottleneck` (a wider receptive field and more
  nonlinearity before the pool) at about its cost.
- `linear`: global average pool + linear; nearly free, weaker.

A model takes one kind for every early exit, or a list with one kind per early exit (shallow to deep).
"""
from __future__ import annotations

from typing import Sequence, Union

from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.backbone import pool_linear
from edgekd.registry import Registry

HEADS: Registry = Registry("head")

HeadSpec = Union[str, Sequence[str]]


def head_kinds(spec: HeadSpec) -> list[str]:
    """The registered head names a spec uses (each checked: an unknown one fails with the closest name)."""
    kinds = [spec] if isinstance(spec, str) else list(spec)
    if not kinds:
        raise EdgekdError("head: an empty list; give one head kind for every early exit, or a list with one per early exit")
    for kind in kinds:
        HEADS.get(kind)
    return kinds


def early_head_kinds(spec: HeadSpec, num_early_exits: int) -> list[str]:
    """One head kind per early exit, shallow to deep: a single kind repeated, or the list as given."""
    kinds = head_kinds(spec)
    if isinstance(spec, str):
        return kinds * num_early_exits
    if len(kinds) != num_early_exits:
        raise EdgekdError(f"head: {kinds} gives {len(kinds)} kind(s) for the {num_early_exits} early exits of this model; "
                          f"give one kind per early exit, shallow to deep, or a single kind for all of them")
    return kinds


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


def _bottleneck_width(in_channels: int, final_channels: int) -> int:
    """BYOT's C/4, but never wider than the stage feeding the head (see the module's docstring)."""
    return max(4, min(final_channels // 4, in_channels))


@HEADS.register("bottleneck")
def bottleneck_head(in_channels: int, reduction: int, final_channels: int, num_classes: int) -> nn.Module:
    """BYOT-style head: squeeze, downsample to the final map size, expand, classify."""
    mid = _bottleneck_width(in_channels, final_channels)
    layers = _conv_bn_relu(in_channels, mid)
    if reduction > 1:
        layers += _conv_bn_relu(mid, mid, reduction, reduction)
    layers += _conv_bn_relu(mid, final_channels)
    return nn.Sequential(*layers, pool_linear(final_channels, num_classes))


@HEADS.register("strided")
def strided_head(in_channels: int, reduction: int, final_channels: int, num_classes: int) -> nn.Module:
    """Halve the map with 3x3 stride-2 convs until it is the final map's size, expand, classify."""
    mid = _bottleneck_width(in_channels, final_channels)
    layers, channels = [], in_channels
    while reduction > 1:
        layers += _conv_bn_relu(channels, mid, 3, 2, 1)
        channels, reduction = mid, reduction // 2
    layers += _conv_bn_relu(channels, final_channels)
    return nn.Sequential(*layers, pool_linear(final_channels, num_classes))


@HEADS.register("linear")
def linear_head(in_channels: int, reduction: int, final_channels: int, num_classes: int) -> nn.Module:
    """Global average pool + linear."""
    return pool_linear(in_channels, num_classes)
