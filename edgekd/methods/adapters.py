"""1x1 conv + BN maps from student to teacher channel widths, for feature-matching losses."""
from __future__ import annotations

import torch
from torch import nn

from edgekd.models import ExitOutputs, MultiExitNet


@torch.no_grad()
def _probe(model: MultiExitNet) -> ExitOutputs:
    """`model`'s outputs for one blank image, in eval mode (no BatchNorm statistics move)."""
    was_training = model.training
    model.eval()
    out = model(torch.zeros(1, 3, model.image_size, model.image_size))
    model.train(was_training)
    return out


def stage_channels(model: MultiExitNet) -> list[int]:
    """Output channels of every stage of `model`."""
    return [s.shape[1] for s in _probe(model).stages]


def stem_channels(model: MultiExitNet) -> int:
    """Output channels of `model`'s stem (a model with `MultiExitNet.stem`)."""
    stem = _probe(model).stem
    if stem is None:
        raise ValueError("this model has no separable stem")
    return stem.shape[1]


def channel_adapter(in_channels: int, out_channels: int, *, always: bool = False) -> nn.Module:
    """Conv1x1 + BN from `in_channels` to `out_channels`; identity when they agree (unless `always`)."""
    if in_channels == out_channels and not always:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
