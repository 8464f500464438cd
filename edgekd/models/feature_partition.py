"""Feature partitioning (Gong et al., "Deep Feature Surgery: Towards Accurate and Efficient Multi-Exit
Networks", ECCV 2024).

Where the feature map after an early exit's trunk forks into that exit's head and the deeper trunks,
DFS splits its channels for the backward pass: the first `shared` share of them take their gradient
only from the deeper path, the rest only from the head. Each shallow exit gets channels of its own
that the deep exits never pull elsewhere, while the blocks before the fork still learn from every
exit. The forward pass is the identity, so inference and export are unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from edgekd.errors import EdgekdError


class _MaskGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, mask: Tensor) -> Tensor:
        ctx.save_for_backward(mask)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def shared_channels(channels: int, shared: float) -> int:
    """How many of a fork's `channels` the deeper path trains; refused where either side would get none."""
    count = round(channels * shared)
    if not 0 < count < channels:
        raise EdgekdError(f"train.feature_partition={shared} leaves {count} of an early exit's {channels} channels to "
                          f"the deeper exits and {channels - count} to the exit's head; each needs at least one. "
                          f"Choose a share between {1 / channels:.3g} and {1 - 1 / channels:.3g} (DFS uses 0.5)")
    return count


def channel_masks(x: Tensor, shared: float) -> tuple[Tensor, Tensor]:
    """(head's, deeper path's) 0/1 masks over the channels (dim 1) of an early exit's feature map, the
    dimension `ExitInfo.channels` counts. Only CNN stages have early exits: a model that cannot be cut
    into stages (a ViT) is one stage with no fork."""
    channels = x.shape[1]
    deeper = (torch.arange(channels, device=x.device) < shared_channels(channels, shared)).to(x.dtype)
    deeper = deeper.view(1, channels, *[1] * (x.ndim - 2))
    return 1 - deeper, deeper


def partition(head_input: Tensor, deeper_input: Tensor, shared: float) -> tuple[Tensor, Tensor]:
    """The fork's two inputs unchanged, the head's gradient kept on its own channels and the deeper
    path's on the shared ones."""
    head_mask, deeper_mask = channel_masks(head_input, shared)
    return _MaskGradient.apply(head_input, head_mask), _MaskGradient.apply(deeper_input, deeper_mask)
