"""Experiment loggers beside `metrics.jsonl` (always written): TensorBoard event files and an MLflow
file store, both offline, both optional extras (`edgekd[tensorboard]`, `edgekd[mlflow]`).

Each writes, per epoch, every loss term, the learning rate, images/s and each exit's validation top-1
(plus the ensemble's), and once the hyperparameters and the resolved recipe. Chosen with
`train.loggers: [tensorboard, mlflow]`; they live in the run folder (`tensorboard/`, `mlruns/`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from edgekd.engine.callbacks import Callback
from edgekd.errors import EdgekdError
from edgekd.registry import Registry

if TYPE_CHECKING:
    from edgekd.engine.trainer import Trainer

LOGGERS: Registry = Registry("logger")
PARAMS_PER_CALL, MAX_PARAM_LENGTH = 100, 6000  # MLflow's limits on one log_batch and on one value


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of one epoch's record, named as both loggers show them."""
    scalars = {"loss/total": record["loss"], "lr": record["lr"], "images_per_s": record["images_per_s"]}
    scalars.update({f"loss/{name}": value for name, value in record["loss_terms"].items()})
    val = record.get("val")
    if val:
        scalars.update({f"val_top1/exit_{k}": v for k, v in enumerate(val["top1"], start=1)})
        scalars["val_top1/ensemble"] = val["ensemble_top1"]
    return {name: float(value) for name, value in scalars.items()}


def hyperparameters(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The recipe flattened to `train.lr: 0.05`-style keys with scalar values (lists as text)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(hyperparameters(value, name + "."))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def _needs(module: str, extra: str) -> None:
    raise EdgekdError(f"train.loggers asks for {extra}, which needs {module}: pip install 'edgekd[{extra}]'")


@LOGGERS.register("tensorboard")
class TensorBoardLogger(Callback):
    """Event files in `<run>/tensorboard`, read by `tensorboard --logdir runs`."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            _needs("tensorboard", "tensorboard")
        self.folder, self.config, self.writer_class = run_dir / "tensorboard", config, SummaryWriter
        self.writer: Any = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        if not trainer.info.is_main:
            return
        # After a resume, events past the checkpoint are dropped (purge_step), as metrics.jsonl drops them.
        self.writer = self.writer_class(str(self.folder), purge_step=trainer.start_epoch)
        self.writer.add_text("config", "```yaml\n" + yaml.safe_dump(self.config, sort_keys=False) + "```", 0)

    def on_epoch_end(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        if self.writer is not None:
            for name, value in epoch_scalars(record).items():
                self.writer.add_scalar(name, value, record["epoch"])
            self.writer.flush()

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.writer is None:
            return
        best = {"hparam/best_val_top1": float(trainer.best_score or 0.0), "hparam/best_epoch": float(trainer.best_epoch or 0)}
        self.writer.add_hparams(hyperparameters(self.config), best, run_name=".")
        self.writer.close()


@LOGGERS.register("mlflow")
class MLflowLogger(Callback):
    """An MLflow run (experiment: the recipe's name) in the file store `<run>/mlruns`, read by
    `mlflow ui --backend-store-uri runs/NAME/mlruns`; or wherever MLFLOW_TRACKING_URI points, as MLflow
    does. MLflow 3.17+ keeps the file store in maintenance mode behind MLFLOW_ALLOW_FILE_STORE, which
    is set for this process unless you set it yourself."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            _needs("mlflow", "mlflow")
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        self.config, self.client_class = config, MlflowClient
        self.client: Any = None
        self.run_id: str | None = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        if not trainer.info.is_main:
            return
        from mlflow.entities import Param

        if self.uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = self.client_class(tracking_uri=self.uri)
        name = str(self.config.get("name") or "edgekd")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run = self.client.create_run(experiment_id, run_name=f"{name}-from-epoch-{trainer.start_epoch}")
        self.run_id = run.info.run_id
        params = [Param(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in hyperparameters(self.config).items()]
        for start in range(0, len(params), PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=params[start:start + PARAMS_PER_CALL])
        self.client.log_text(self.run_id, yaml.safe_dump(self.config, sort_keys=False), "config.yaml")

    def on_epoch_end(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(name, value, stamp, record["epoch"]) for name, value in epoch_scalars(record).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id)


def build_loggers(names: list[str], run_dir: Path, config: dict[str, Any]) -> list[Callback]:
    """The loggers `train.loggers` names (each checked for its extra now, before training)."""
    builders: list[Callable[..., Callback]] = [LOGGERS.get(name) for name in names]
    return [builder(run_dir, config) for builder in builders]
