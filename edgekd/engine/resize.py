"""Progressive resizing: the first epochs train on smaller images, the last ones at full size.

A convolution's cost grows with the pixels it sees, so a 24 px epoch costs about half a 32 px one.
Epochs 1..R ramp the side linearly from `initial_scale` of the full size up to it (rounded to a
multiple of `size_multiple`); the last `finetune_fraction` of the epochs train at full size, so the
network ends on the resolution it is evaluated and exported at (the lever of fast.ai's DAWNBench
entries and of MosaicML Composer's ProgressiveResizing). Batches are downsampled on the fly
(bilinear, antialiased), after augmentation, and the teachers see the same smaller images.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from edgekd.config import ProgressiveResizeConfig


def epoch_size(epoch: int, epochs: int, full: int, cfg: Optional[ProgressiveResizeConfig]) -> int:
    """The image side trained on in `epoch` (1-based) of `epochs`."""
    if cfg is None:
        return full
    ramp = epochs - round(cfg.finetune_fraction * epochs)
    if epoch > ramp:
        return full
    scale = cfg.initial_scale + (1 - cfg.initial_scale) * (epoch - 1) / ramp
    multiple = cfg.size_multiple
    return max(multiple, min(full, int(round(full * scale / multiple)) * multiple))


def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """`images` (N, C, H, W) at `size` x `size`; unchanged when they already are."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
