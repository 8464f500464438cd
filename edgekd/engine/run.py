"""One training run from a resolved recipe: teachers (loaded, cached or trained), student,
method, training, and the final per-exit evaluation on validation and test."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from torch.utils.data import DataLoader

from edgekd.config import MethodConfig, RecipeConfig, dump_config
from edgekd.data import DataSplits, build_data
from edgekd.engine.distributed import DistInfo, EpochSampler, barrier
from edgekd.engine.evaluate import evaluate
from edgekd.engine.model_io import load_model, model_spec
from edgekd.engine.rng import seed_everything
from edgekd.engine.summary import exit_table
from edgekd.engine.trainer import Trainer
from edgekd.errors import EdgekdError
from edgekd.methods import build_method
from edgekd.models import MultiExitNet, create_model

RESULTS = "results.json"


def teacher_dir(runs_dir: Path, config: RecipeConfig, index: int) -> Path:
    """Cache folder of a trained teacher, keyed by (arch, dataset, hash of everything that shapes it)."""
    teacher = config.teachers[index]
    key = {"model": teacher.model.model_dump(mode="json"), "data": config.data.model_dump(mode="json", exclude={"root", "workers"}),
           "train": teacher.train.model_dump(mode="json")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return runs_dir / "teachers" / f"{teacher.model.name}-{config.data.name}-{digest}"


def prepare_teachers(config: RecipeConfig, data: DataSplits, runs_dir: Path, info: DistInfo, log: Callable[[str], None]) -> list[MultiExitNet]:
    """Each teacher from its checkpoint, from the teacher cache, or trained now with CE and cached."""
    teachers = []
    for i, teacher in enumerate(config.teachers):
        expect = {"name": teacher.model.name, "num_classes": data.num_classes, "head": teacher.model.head, "width": teacher.model.width}
        if teacher.checkpoint:
            model, _ = load_model(teacher.checkpoint, expect=expect)
        else:
            folder = teacher_dir(runs_dir, config, i)
            if not (folder / RESULTS).exists():
                log(f"training teacher {i + 1} ({teacher.model.name}) into {folder}")
                teacher_recipe = RecipeConfig(name=folder.name, data=config.data, student=teacher.model,
                                              method=MethodConfig(name="ce"), train=teacher.train)
                train_and_evaluate(teacher_recipe, folder, runs_dir=runs_dir, resume=(folder / "checkpoints" / "last.pt").exists(),
                                   info=info, log=log, data=data)
            else:
                log(f"teacher {i + 1} ({teacher.model.name}): cached in {folder}")
            model, _ = load_model(folder / "checkpoints" / "best.pt", expect=expect)
        teachers.append(model)
    return teachers


def _prepare_run_dir(run_dir: Path, config: RecipeConfig, resume: bool, overwrite: bool, info: DistInfo) -> Path | None:
    """Check the run folder; return the checkpoint to resume from, if any."""
    last = run_dir / "checkpoints" / "last.pt"
    saved = run_dir / "config.yaml"
    if resume:
        if saved.exists():
            before = yaml.safe_load(saved.read_text())
            now = config.model_dump(mode="json")
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            if changed:
                raise EdgekdError(f"--resume: the recipe differs from the one {run_dir} was started with (sections: "
                                  f"{', '.join(changed)}). Resume with the same recipe, profile and --set values")
        return last if last.exists() else None
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise EdgekdError(f"{run_dir} already holds a run. Continue it with --resume, replace it with --overwrite, "
                              f"or pick another --runs-dir")
        barrier(info)
        if info.is_main:
            shutil.rmtree(run_dir)
        barrier(info)
    return None


def _evaluate_split(model: MultiExitNet, dataset: Any, config: RecipeConfig, device: torch.device, info: DistInfo, workers: int) -> dict[str, Any]:
    loader = DataLoader(dataset, config.train.eval_batch_size, num_workers=workers,
                        sampler=EpochSampler(len(dataset), shuffle=False, info=info))
    return evaluate(model, loader, device, info=info)


def train_and_evaluate(
    config: RecipeConfig, run_dir: Path, *, runs_dir: Path, resume: bool = False, overwrite: bool = False,
    info: DistInfo = DistInfo(), log: Callable[[str], None] = print, data: DataSplits | None = None,
) -> dict[str, Any]:
    """Train the recipe's student into `run_dir` and write `results.json` (per-exit val/test accuracy)."""
    resume_from = _prepare_run_dir(run_dir, config, resume, overwrite, info)
    barrier(info)  # every rank has checked the folder before rank 0 writes into it
    if resume and resume_from is None:
        log(f"--resume: no checkpoint in {run_dir}, starting from the beginning")
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(config))
    seed_everything(config.train.seed)
    data = data or build_data(config.data)
    teachers = prepare_teachers(config, data, runs_dir, info, log)
    seed_everything(config.train.seed)  # the student's init must not depend on whether teachers were cached
    s = config.student
    student = create_model(s.name, num_classes=data.num_classes, exits=s.exits, head=s.head, image_size=data.image_size, width=s.width)
    method = build_method(config.method, student, teachers)
    metadata = {
        "config": config.model_dump(mode="json"),
        "model_spec": model_spec(s, data.num_classes, data.image_size, student.exit_stages),
        "data_meta": {"classes": list(data.classes), "mean": list(data.mean), "std": list(data.std), "image_size": data.image_size},
    }
    trainer = Trainer(student, method, teachers, data, config.train, run_dir=run_dir, workers=config.data.workers,
                      metadata=metadata, info=info, log=log)
    log(f"{config.run_name}: {s.name} ({student.num_exits} exits) with '{config.method.name}' on {config.data.name} "
        f"[{len(data.train)} train / {len(data.val)} val / {len(data.test)} test] on {trainer.device}")
    last_record = trainer.fit(resume_from=resume_from)
    barrier(info)

    results: dict[str, Any] = {"name": config.run_name, "exits": [e.to_dict() for e in student.exit_info]}
    last_epoch = last_record.get("epoch", config.train.epochs)
    results["last"] = {"epoch": last_epoch, "val": last_record.get("val") or _evaluate_split(student, data.val, config, trainer.device, info, config.data.workers),
                       "test": _evaluate_split(student, data.test, config, trainer.device, info, config.data.workers)}
    best_model, best_state = load_model(run_dir / "checkpoints" / "best.pt")
    best_model.to(trainer.device)
    results["best"] = {"epoch": best_state["epoch"], "val": best_state["metrics"]["val"],
                       "test": _evaluate_split(best_model, data.test, config, trainer.device, info, config.data.workers)}
    if info.is_main:
        (run_dir / RESULTS).write_text(json.dumps(results, indent=2))
        log(f"\n{config.run_name}: best epoch {results['best']['epoch']} (selected on validation), last epoch {last_epoch}\n"
            + exit_table(results) + f"\nresults: {run_dir / RESULTS}")
    return results
