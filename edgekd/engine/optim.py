"""Optimizer and learning-rate schedule from the `train:` section.

The schedule is a per-step LambdaLR: linear warm-up over `warmup_epochs`, then either
multi-step (lr * decay^#{m : epoch > m}, epochs counted from 1, so a milestone of 150 first
applies in epoch 151, as in RepDistiller), cosine to zero, or constant.

A method that trains in phases (MSKD phased, Stagewise KD) gets the schedule restarted at each
phase and compressed to the phase's length: milestones scale with it, cosine decays to zero within
it, and the warm-up happens in the first phase only. So each newly trained stage starts at the full
rate instead of inheriting the tail of one long decay.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR

from edgekd.config import TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """The multiplier of the base lr at optimizer step `step` (0-based) of one schedule of `cfg.epochs`."""
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


def phase_schedule(cfg: TrainConfig, phase_epochs: Sequence[int], phase: int) -> TrainConfig:
    """`cfg`'s schedule for phase `phase` (0-based) of `phase_epochs`: as long as the phase, with the
    milestones scaled to it and the warm-up in the first phase only."""
    length = phase_epochs[phase]
    milestones = [max(1, round(m * length / cfg.epochs)) for m in cfg.milestones]
    warmup = cfg.warmup_epochs * length / cfg.epochs if phase == 0 else 0.0
    return cfg.model_copy(update={"epochs": length, "milestones": milestones, "warmup_epochs": warmup})


def phased_lr_factor(step: int, steps_per_epoch: int, schedules: Sequence[TrainConfig]) -> float:
    """`lr_factor` restarted at the first step of every phase; `schedules` holds each phase's
    (`phase_schedule`), so no config is rebuilt on the per-step path."""
    start = 0
    for phase, schedule in enumerate(schedules):
        end = start + schedule.epochs * steps_per_epoch
        if step < end or phase == len(schedules) - 1:
            return lr_factor(step - start, steps_per_epoch, schedule)
        start = end
    raise ValueError("no phases")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int,
                    phase_epochs: Sequence[int] = ()) -> LambdaLR:
    """Per-step schedule; restarted at each phase where there are several `phase_epochs`."""
    if len(phase_epochs) > 1:
        schedules = [phase_schedule(cfg, phase_epochs, phase) for phase in range(len(phase_epochs))]
        return LambdaLR(optimizer, lambda step: phased_lr_factor(step, steps_per_epoch, schedules))
    return LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg))
