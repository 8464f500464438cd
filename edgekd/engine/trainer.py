"""The one training loop every method uses.

Each step: student forward, teachers forward (frozen, eval, no grad), `method.loss` -> named
terms, their sum backpropagated. Each epoch: validation per exit, one metrics line, checkpoints.
Determinism: the data order comes from a (seed, epoch)-seeded sampler and every RNG is stored in
`last.pt`, so a run resumed on CPU ends with the same bits as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from edgekd.config import TrainConfig
from edgekd.data import DataSplits
from edgekd.engine.callbacks import Callback, Checkpointer, MetricsLogger, ProgressBar
from edgekd.engine.loggers import build_loggers
from edgekd.engine.checkpoint import load_checkpoint
from edgekd.engine.distributed import DistInfo, EpochSampler, all_reduce_sum, broadcast_buffers
from edgekd.engine.evaluate import evaluate
from edgekd.engine.optim import build_optimizer, build_scheduler
from edgekd.engine.resize import epoch_size, resized
from edgekd.engine.teacher_cache import IndexedDataset, TeacherLogitCache, cache_refusal
from edgekd.engine.timing import TIMED_STEPS, estimate_fit_seconds, format_duration
from edgekd.engine.rng import rng_state, set_rng_state
from edgekd.errors import EdgekdError
from edgekd.methods import Method
from edgekd.methods.base import Phase, Trainable
from edgekd.models import ExitOutputs, MultiExitNet
from edgekd.models.feature_partition import shared_channels


class NonFiniteLossError(EdgekdError):
    """Training diverged; raised before any checkpoint of the broken weights is written."""


class StudentAndMethod(nn.Module):
    """Student plus the method's own trainable modules, as one module so DDP syncs them together."""

    def __init__(self, student: MultiExitNet, method: Method) -> None:
        super().__init__()
        self.student, self.method = student, method

    def forward(self, images: Tensor, teacher_outs: list[ExitOutputs], target: Tensor, epoch: int, step: int,
                plan: Trainable) -> dict[str, Tensor]:
        return self.method.loss(self.student(images), teacher_outs, target, epoch=epoch, step=step, plan=plan)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgekdError("train.device=cuda but no CUDA GPU is visible; use train.device=cpu (or auto)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16/fp16 autocast on CUDA; training on CPU is always fp32."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


class Trainer:
    """Trains `student` with `method` from frozen `teachers` on `data` as `cfg` (TrainConfig) says."""

    def __init__(
        self, student: MultiExitNet, method: Method, teachers: list[MultiExitNet], data: DataSplits, cfg: TrainConfig, *,
        run_dir: Path, workers: int = 0, metadata: dict[str, Any] | None = None, info: DistInfo = DistInfo(),
        callbacks: list[Callback] | None = None, log: Callable[[str], None] = print, estimate: bool = True,
    ) -> None:
        """`estimate`: time a few steps first and print how long training should take."""
        self.cfg, self.info, self.run_dir, self.metadata = cfg, info, Path(run_dir), metadata or {}
        self.device = resolve_device(cfg.device)
        self.log = log if info.is_main else (lambda message: None)
        self.student, self.method = student.to(self.device), method.to(self.device)
        self.teachers = [t.to(self.device).eval().requires_grad_(False) for t in teachers]
        if cfg.channels_last:  # the student only: frozen teachers run inference faster in NCHW on CPU (measured)
            self.student.to(memory_format=torch.channels_last)
        self.student.gradient_equilibrium = cfg.gradient_equilibrium
        if cfg.feature_partition is not None:  # refused here, before any epoch, where a fork cannot be split
            for early_exit in self.student.exit_info[:-1]:
                shared_channels(early_exit.channels, cfg.feature_partition)
        self.student.feature_partition = cfg.feature_partition
        self.image_size, self.num_classes = data.image_size, data.num_classes
        self.image_channels = 3
        self.phases = method.phases(cfg.epochs)
        if sum(phase.epochs for phase in self.phases) != cfg.epochs or any(phase.epochs < 1 for phase in self.phases):
            raise ValueError(f"method {type(method).__name__} planned phases of {[p.epochs for p in self.phases]} epochs "
                             f"for a run of {cfg.epochs}")
        module = StudentAndMethod(self.student, self.method)
        self.train_module: nn.Module = module
        self.plain_module = module  # without the DDP wrapper: what the time estimate copies
        if info.enabled:
            ids = [self.device.index or info.local_rank] if self.device.type == "cuda" else None
            # A method that freezes parts in some phases leaves them without gradients there.
            partial = any(p.trainable != method.everything() for p in self.phases)
            self.train_module = DistributedDataParallel(module, device_ids=ids, find_unused_parameters=partial)
        self.amp_dtype = autocast_dtype(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.train_sampler = EpochSampler(len(data.train), shuffle=True, seed=cfg.seed, info=info)
        loader_kw = dict(num_workers=workers, pin_memory=self.device.type == "cuda", persistent_workers=False)
        # Worker seeds come from this generator, re-seeded per epoch, never from the global RNG.
        self.loader_generator = torch.Generator()
        self.batch_augment, self.augment_generator = data.train_batch_augment, torch.Generator()
        self.data, self.teacher_cache = data, None  # the cache is built when training starts (`fit`)
        self.caches_teacher_logits = bool(cfg.teacher_cache_views and self.teachers)
        if self.caches_teacher_logits:
            refusal = cache_refusal(type(method), self.batch_augment is not None, cfg.progressive_resize is not None)
            if refusal:
                raise EdgekdError(refusal)
        train_set = IndexedDataset(data.train) if self.caches_teacher_logits else data.train
        self.train_loader = DataLoader(train_set, cfg.batch_size, sampler=self.train_sampler, drop_last=True,
                                       generator=self.loader_generator, **loader_kw)
        self.val_loader = DataLoader(data.val, cfg.eval_batch_size, sampler=EpochSampler(len(data.val), shuffle=False, info=info), **loader_kw)
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise EdgekdError(f"train.batch_size={cfg.batch_size} is larger than the {len(data.train)} training images per process")
        self.optimizer = build_optimizer(module.parameters(), cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch, [p.epochs for p in self.phases])
        self.callbacks = callbacks if callbacks is not None else [
            ProgressBar(), MetricsLogger(self.run_dir / "metrics.jsonl"), Checkpointer(self.run_dir / "checkpoints"),
            *build_loggers(cfg.loggers, self.run_dir, self.metadata.get("config", {})),
        ]
        self.start_epoch, self.global_step = 1, 0
        self.estimate, self.fit_seconds = estimate, 0.0
        # The trainer alone owns the best epoch; callbacks read these (Checkpointer writes best.pt).
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.improved = False  # whether the epoch that just ended is the new best

    def _build_teacher_cache(self) -> None:
        start, views = time.perf_counter(), self.cfg.teacher_cache_views
        self.teacher_cache = TeacherLogitCache(self.teachers, self.data.train, self.batch_augment, views, seed=self.cfg.seed,
                                               batch_size=self.cfg.eval_batch_size, device=self.device)
        self.log(f"teacher logits of {views} view(s) of each of {len(self.data.train)} training images cached in "
                 f"{format_duration(time.perf_counter() - start)}")

    # ------------------------------------------------------------------ state

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def selection_score(self, record: dict[str, Any]) -> float | None:
        """The validation accuracy that picks `best.pt`: the final exit's, or the ensemble's."""
        val = record.get("val")
        if not val:
            return None
        return val["ensemble_top1"] if self.cfg.select == "ensemble" else val["top1"][-1]

    def checkpoint_state(self, record: dict[str, Any], *, resumable: bool) -> dict[str, Any]:
        state = {
            "epoch": record["epoch"], "metrics": record, "model": self.student.state_dict(),
            "method": self.method.state_dict(), "best_score": self.best_score, "best_epoch": self.best_epoch,
            **self.metadata,
        }
        if resumable:
            state.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                         scaler=self.scaler.state_dict(), rng=rng_state(), global_step=self.global_step)
        return state

    def resume(self, path: Path) -> None:
        """Continue from `last.pt`: weights, optimizer, schedule, scaler, RNGs, epoch."""
        state = load_checkpoint(path, map_location=self.device)
        if "optimizer" not in state:
            raise EdgekdError(f"{path} holds weights only and cannot be resumed from; resume from checkpoints/last.pt")
        self.student.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.start_epoch, self.global_step = state["epoch"] + 1, state["global_step"]
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.log(f"resumed from {path} at epoch {state['epoch']}")

    # ------------------------------------------------------------------ loop

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        self.train_sampler.set_epoch(epoch)
        self.loader_generator.manual_seed(self.cfg.seed * 100_003 + epoch)
        self.augment_generator.manual_seed((self.cfg.seed * 100_003 + epoch) * 1_009 + self.info.rank)
        self.train_module.train()
        self.apply_phase(epoch)
        size = self.epoch_size(epoch)
        sums: dict[str, Tensor] = {}
        images_seen, start = 0, time.perf_counter()
        for images, target, *index in self.train_loader:
            images = images.to(self.device, non_blocking=True)
            teacher_outs = None
            if self.teacher_cache is not None:
                images, teacher_outs = self.teacher_cache.batch(images, index[0], self.augment_generator)
            elif self.batch_augment is not None:
                images = self.batch_augment(images, self.augment_generator)
            images = resized(images, size)
            target = target.to(self.device, non_blocking=True)
            terms = self.loss_terms(self.train_module, images, target, epoch=epoch, step=self.global_step, teacher_outs=teacher_outs)
            loss = sum(terms.values())
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                raise NonFiniteLossError(
                    f"loss became non-finite at epoch {epoch}, step {self.global_step} ({values}); training stopped "
                    f"and no checkpoint was written for this epoch. Lower train.lr, set train.grad_clip, or use train.amp=off"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.train_module.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
            images_seen += len(target)
            self.global_step += 1
            self._call("on_step_end", loss_value)
        elapsed = time.perf_counter() - start
        broadcast_buffers(self.train_module, self.info)
        totals = torch.stack([sums[k] for k in sums]).cpu().double() / self.steps_per_epoch
        all_reduce_sum(totals, self.info)
        totals /= self.info.world_size
        terms_mean = {k: round(float(v), 6) for k, v in zip(sums, totals)}
        record = {"loss_terms": terms_mean, "loss": round(sum(terms_mean.values()), 6),
                  "images_per_s": round(images_seen * self.info.world_size / elapsed, 2), "time_s": round(elapsed, 3)}
        if size != self.image_size:
            record["image_size"] = size
        return record

    def loss_terms(self, module: nn.Module, images: Tensor, target: Tensor, *, epoch: int, step: int,
                   teacher_outs: list[ExitOutputs] | None = None) -> dict[str, Tensor]:
        """One step's loss terms: the teachers' forward passes (no grad, NCHW) unless their outputs are
        given, then `module` (the student and the method) on `images`, in channels_last where asked."""
        with self.autocast():
            if teacher_outs is None:
                with torch.no_grad():
                    teacher_outs = [teacher(images) for teacher in self.teachers]
            if self.cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            return module(images, teacher_outs, target, epoch, step, self.plan(epoch))

    def epoch_size(self, epoch: int) -> int:
        """The side of the images `epoch` trains on (smaller in early epochs under `progressive_resize`)."""
        return epoch_size(epoch, self.cfg.epochs, self.image_size, self.cfg.progressive_resize)

    def plan(self, epoch: int) -> Trainable:
        """What trains in `epoch` (1-based): the plan of the method's phase that holds it."""
        return self.phase_of(epoch).trainable

    def phase_of(self, epoch: int) -> Phase:
        end = 0
        for phase in self.phases:
            end += phase.epochs
            if epoch <= end:
                return phase
        return self.phases[-1]

    def apply_phase(self, epoch: int) -> None:
        """Freeze the trunks and heads the method does not train this epoch; their BatchNorm stays
        in eval mode so its running statistics do not drift while the weights are frozen."""
        plan = self.plan(epoch)
        for k, (trunk, head) in enumerate(zip(self.student.trunks, self.student.heads)):
            for part, trains in ((trunk, k in plan.trunks), (head, k in plan.heads)):
                part.requires_grad_(trains)
                part.train(trains)
        stem = self.student.stem
        if plan.stem is not None and stem is not None:
            stem.requires_grad_(plan.stem)
            stem.train(plan.stem)

    def track_best(self, record: dict[str, Any]) -> bool:
        """Update the best epoch from `record`'s validation accuracy; True where it improved."""
        score = self.selection_score(record)
        improved = score is not None and (self.best_score is None or score > self.best_score)
        if improved:
            self.best_score, self.best_epoch = score, record["epoch"]
        return improved

    def fit(self, resume_from: Path | None = None) -> dict[str, Any]:
        """Train to `cfg.epochs`; returns the last epoch's record."""
        if resume_from is not None:
            self.resume(resume_from)
        self._call("on_fit_start")
        record: dict[str, Any] = {}
        if self.caches_teacher_logits and self.start_epoch <= self.cfg.epochs:
            self._build_teacher_cache()
        if self.start_epoch <= self.cfg.epochs and self.estimate:
            left = self.cfg.epochs - self.start_epoch + 1
            self.log(f"{left} epoch(s) of {self.steps_per_epoch} steps: about {format_duration(estimate_fit_seconds(self))} "
                     f"on this machine (estimated from {TIMED_STEPS} timed steps)")
        start = time.perf_counter()
        for epoch in range(self.start_epoch, self.cfg.epochs + 1):
            self._call("on_epoch_start", epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            record = {"epoch": epoch, "lr": lr, **self._train_epoch(epoch)}
            record["val"] = evaluate(self.student, self.val_loader, self.device, amp_dtype=self.amp_dtype,
                                     info=self.info, channels_last=self.cfg.channels_last)
            self.improved = self.track_best(record)
            self._call("on_epoch_end", record)
        self._call("on_fit_end")
        self.fit_seconds = time.perf_counter() - start
        return record
