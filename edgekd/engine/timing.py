"""How long training will take, measured on this machine before it starts, and how long it took.

`estimate_fit_seconds` times a few training steps of a throw-away copy of the student (with the
method's loss and the teachers' forward passes, as the real steps run) on random images, under a
forked RNG so that the run itself is not changed, and scales that to every epoch left: steps per
epoch, the image size of each epoch (progressive resizing) and validation.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import TYPE_CHECKING

import torch

from edgekd.engine.optim import build_optimizer

if TYPE_CHECKING:
    from edgekd.engine.trainer import Trainer

TIMED_STEPS = 3
WARMUP_STEPS = 2  # kernels and buffers are set up on the first steps
EVAL_SHARE = 1 / 3  # a validation image costs about a third of a training image (forward only)


def format_duration(seconds: float) -> str:
    """`42 s`, `5 min 07 s`, `1 h 02 min`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def step_seconds(trainer: "Trainer", size: int) -> float:
    """Median seconds of one training step at `size` px, on a copy of the student and the method with
    the first epoch's parts frozen (a frozen backbone costs no backward pass)."""
    trainer.apply_phase(trainer.start_epoch)
    module = copy.deepcopy(trainer.plain_module)
    optimizer = build_optimizer(module.parameters(), trainer.cfg)
    batch = trainer.cfg.batch_size
    times = []
    with torch.random.fork_rng(devices=[]):
        images = torch.randn(batch, trainer.image_channels, size, size, device=trainer.device)
        target = torch.randint(0, trainer.num_classes, (batch,), device=trainer.device)
        for i in range(WARMUP_STEPS + TIMED_STEPS):
            start = time.perf_counter()
            cached = trainer.teacher_cache.stand_in(batch) if trainer.teacher_cache is not None else None
            loss = sum(trainer.loss_terms(module, images, target, epoch=trainer.start_epoch, step=0, teacher_outs=cached).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= WARMUP_STEPS:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def estimate_fit_seconds(trainer: "Trainer") -> float:
    """Seconds the epochs still to train should take on this machine (training steps and validation)."""
    epochs = range(trainer.start_epoch, trainer.cfg.epochs + 1)
    at_size: dict[int, float] = {}
    total = 0.0
    for epoch in epochs:
        size = trainer.epoch_size(epoch)
        if size not in at_size:
            at_size[size] = step_seconds(trainer, size)
        total += at_size[size] * trainer.steps_per_epoch
    full = at_size.get(trainer.image_size) or step_seconds(trainer, trainer.image_size)
    val_steps = len(trainer.val_loader.dataset) / trainer.cfg.batch_size
    return total + len(epochs) * val_steps * full * EVAL_SHARE
