"""Parameter and FLOP counts. FLOPs come from `torch.utils.flop_counter` (one multiply-add = 2 FLOPs)."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


@torch.no_grad()
def count_flops(module: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of `module(x)` for the given input (use a batch of one for per-image cost)."""
    with FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())
