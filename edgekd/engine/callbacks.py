"""Trainer callbacks: progress bar, metrics log, checkpoints. Behaviour is added here, not by
subclassing the trainer."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from edgekd.engine.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from edgekd.engine.trainer import Trainer


class Callback:
    """Hooks the trainer calls; every one is optional. `on_step_end` is on the hot path: keep it cheap."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None: ...
    def on_step_end(self, trainer: "Trainer", loss: float) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", record: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss (hidden when output is not a terminal)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.total = 0.0

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        self.total, self.bar = 0.0, tqdm(
            total=trainer.steps_per_epoch, desc=f"epoch {epoch}/{trainer.cfg.epochs}", leave=False,
            disable=None if trainer.info.is_main else True, dynamic_ncols=True,
        )

    def on_step_end(self, trainer: "Trainer", loss: float) -> None:
        self.total += loss
        if self.bar is not None and not self.bar.disable:
            self.bar.update(1)
            if self.bar.n % 10 == 0:
                self.bar.set_postfix(loss=f"{self.total / self.bar.n:.4f}")

    def on_epoch_end(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()


class MetricsLogger(Callback):
    """Appends one JSON line per epoch to `metrics.jsonl` and prints a one-line summary."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_fit_start(self, trainer: "Trainer") -> None:
        if not trainer.info.is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # After a resume, forget epochs the interrupted run logged past its last checkpoint.
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["epoch"] < trainer.start_epoch]
            self.path.write_text("".join(line + "\n" for line in kept))

    def on_epoch_end(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        if not trainer.info.is_main:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        terms = " ".join(f"{k} {v:.4f}" for k, v in record["loss_terms"].items())
        val = record.get("val")
        val_text = ""
        if val:
            exits = " ".join(f"{a:.1f}" for a in val["top1"])
            val_text = f" | val top1 [{exits}] ens {val['ensemble_top1']:.1f}"
        size = f" | {record['image_size']} px" if "image_size" in record else ""
        trainer.log(
            f"epoch {record['epoch']}/{trainer.cfg.epochs}{size} loss {record['loss']:.4f} ({terms}){val_text}"
            f" | lr {record['lr']:.4g} | {record['images_per_s']:.0f} img/s | {record['time_s']:.1f}s"
        )


class Checkpointer(Callback):
    """`last.pt` after every epoch (everything needed to resume) and `best.pt` when the trainer
    says the selected validation accuracy improved (weights and metadata only)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_epoch_end(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        if not trainer.info.is_main:
            return
        if trainer.improved:  # the trainer owns the best epoch; this only writes it
            save_checkpoint(self.folder / "best.pt", trainer.checkpoint_state(record, resumable=False))
        save_checkpoint(self.folder / "last.pt", trainer.checkpoint_state(record, resumable=True))
