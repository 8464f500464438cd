"""Optimizer and learning-rate schedule from the `train:` section.

The schedule is a per-step LambdaLR: linear warm-up over `warmup_epochs`, then either
multi-step (lr * decay^#{m : epoch > m}, epochs counted from 1, so a milestone of 150 first
applies in epoch 151, as in RepDistiller), cosine to zero, or constant.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg) -> torch.optim.Optimizer:  # noqa: ANN001 (TrainConfig)
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, steps_per_epoch: int, cfg) -> float:  # noqa: ANN001
    """The multiplier of the base lr at optimizer step `step` (0-based)."""
    warmup_steps = cfg.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    epoch = step // steps_per_epoch + 1
    if cfg.schedule == "multistep":
        return cfg.lr_decay ** sum(epoch > m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        total = cfg.epochs * steps_per_epoch - warmup_steps
        progress = (step - warmup_steps) / max(1, total)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, steps_per_epoch: int) -> LambdaLR:  # noqa: ANN001
    return LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg))
