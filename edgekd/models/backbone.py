"""What every backbone builder returns: the network cut into stages plus its own classifier."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class Backbone:
    """A classifier cut into `stages` (stem folded into the first) and the `classifier` that
    turns the last stage's output into logits. MultiExitNet puts exit heads between stages.
    `stem_first`: the first stage is `Sequential(stem, rest)`, so the stem's output can be read
    on its own (Stagewise KD matches it)."""

    stages: list[nn.Module]
    classifier: nn.Module
    stem_first: bool = False


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """Channel count times the width multiplier, never below `minimum`."""
    return max(minimum, int(round(channels * width)))


def pool_linear(in_channels: int, num_classes: int) -> nn.Module:
    """Global average pool, flatten, linear: the classifier of most CNNs."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes))
