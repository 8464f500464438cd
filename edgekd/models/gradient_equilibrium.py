"""Gradient equilibrium (Li et al., "Improved Techniques for Training Adaptive Deep Networks", ICCV 2019).

In a multi-exit network the shared early blocks receive the gradients of every exit after them, so
their gradient grows with the number of exits and the deep exits' signal swamps the shallow ones.
Gradient equilibrium rescales the backward pass where the feature map after trunk k (0-based, K
exits) forks: the path into head k carries 1/(K-k) of its gradient and the path into the next
trunk (K-k-1)/(K-k). The forward pass is the identity, so inference and export are unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """`x` unchanged in the forward pass; its gradient multiplied by `scale` in the backward pass."""
    return _ScaleGradient.apply(x, scale)


def fork(x: Tensor, exit_index: int, num_exits: int) -> tuple[Tensor, Tensor]:
    """(input of head `exit_index`, input of the next trunk) with the equilibrium's gradient scales."""
    remaining = num_exits - exit_index
    return scale_gradient(x, 1.0 / remaining), scale_gradient(x, (remaining - 1) / remaining)
