"""1x1 conv + BN maps from student to teacher channel widths, for feature-matching losses."""
from __future__ import annotations

import torch
from torch import nn

from edgekd.models import MultiExitNet


@torch.no_grad()
def stage_channels(model: MultiExitNet) -> list[int]:
    """Output channels of every stage of `model` (one dummy forward on a copy-free eval pass)."""
    was_training = model.training
    model.eval()
    stages = model(torch.zeros(1, 3, model.image_size, model.image_size)).stages
    model.train(was_training)
    return [s.shape[1] for s in stages]


def channel_adapter(in_channels: int, out_channels: int, *, always: bool = False) -> nn.Module:
    """Conv1x1 + BN from `in_channels` to `out_channels`; identity when they agree (unless `always`)."""
    if in_channels == out_channels and not always:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
