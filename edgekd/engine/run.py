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

from edgekd.config import INIT_FROM_TEACHER, DataConfig, MethodConfig, ModelConfig, RecipeConfig, dump_config
from edgekd.data import DataSplits, build_data
from edgekd.engine.distributed import DistInfo, EpochSampler, barrier
from edgekd.engine.evaluate import evaluate
from edgekd.engine.model_io import load_model, model_spec
from edgekd.engine.rng import seed_everything
from edgekd.engine.summary import exit_table
from edgekd.engine.timing import format_duration
from edgekd.engine.trainer import Trainer
from edgekd.errors import EdgekdError
from edgekd.methods import build_method
from edgekd.models import MultiExitNet, create_model
from edgekd.models.sources import library_preprocess
from edgekd.models.weight_selection import Selection, SelectionError, select_weights

RESULTS = "results.json"
LIBRARY_WEIGHTS = "weights.safetensors"  # a timm/torchvision model's best weights in the library's own names


def write_library_weights(model: MultiExitNet, path: Path) -> None:
    """The best weights of a timm/torchvision model as a plain state_dict the library loads directly (the
    exit heads are not part of it): what `weights:` takes, e.g. as a later recipe's teacher."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file(model.source_state_dict(), str(tmp))
    tmp.replace(path)


def _cache_dir(runs_dir: Path, model: ModelConfig, data: DataConfig, key: dict[str, Any]) -> Path:
    """`runs/teachers/<arch>-<dataset>-<hash of everything that shapes the weights>`."""
    if model.weights and Path(model.weights).expanduser().is_file():
        key = {**key, "weights": _file_identity(str(Path(model.weights).expanduser()))}
    key = {"model": model.model_dump(mode="json"), "data": data.model_dump(mode="json", exclude={"root", "workers"}), **key}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return runs_dir / "teachers" / f"{model.name.replace('/', '-')}-{data.name}-{digest}"


def _file_identity(path: str) -> dict[str, Any]:
    """What keys a cache on a checkpoint file: its resolved path, size and modification time."""
    p = Path(path)
    if not p.is_file():
        raise EdgekdError(f"teacher checkpoint {path} does not exist")
    stat = p.stat()
    return {"path": str(p.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _train_cached(folder: Path, recipe: RecipeConfig, data: DataSplits, runs_dir: Path, info: DistInfo,
                  log: Callable[[str], None], what: str) -> Path:
    """Train `recipe` into the cache `folder` unless it is already there; its best checkpoint."""
    if (folder / RESULTS).exists():
        log(f"{what}: cached in {folder}")
    else:
        log(f"training {what} into {folder}")
        train_and_evaluate(recipe, folder, runs_dir=runs_dir, resume=(folder / "checkpoints" / "last.pt").exists(),
                           info=info, log=log, data=data)
    return folder / "checkpoints" / "best.pt"


def _train_teacher_with_ce(config: RecipeConfig, index: int, model: ModelConfig, data: DataSplits, runs_dir: Path,
                           info: DistInfo, log: Callable[[str], None], what: str) -> Path:
    """Train `model` from scratch with CE as teacher `index` trains (cached); its best checkpoint."""
    teacher = config.teachers[index]
    recipe = RecipeConfig(name="teacher", data=config.data, student=model, method=MethodConfig(name="ce"), train=teacher.train)
    folder = _cache_dir(runs_dir, model, config.data, {"train": teacher.train.model_dump(mode="json")})
    return _train_cached(folder, recipe, data, runs_dir, info, log, what)


def build_configured(model: ModelConfig, data: DataSplits) -> MultiExitNet:
    """The model a `model:` section describes, with its pretrained or file weights, for `data`."""
    return create_model(model.name, num_classes=data.num_classes, exits=model.exits, head=model.head,
                        image_size=data.image_size, width=model.width, pretrained=model.pretrained, weights=model.weights)


def _expected(model: ModelConfig, data: DataSplits) -> dict[str, Any]:
    """The `model_spec` fields a checkpoint of `model` must have to serve as this run's teacher."""
    return {"name": model.name, "num_classes": data.num_classes, "head": model.head, "width": model.width}


def _prepare_teacher(config: RecipeConfig, index: int, data: DataSplits, runs_dir: Path, info: DistInfo,
                     log: Callable[[str], None]) -> MultiExitNet:
    teacher = config.teachers[index]
    what = f"teacher {index + 1} ({teacher.model.name})"
    expect = _expected(teacher.model, data)
    single = teacher.model.model_copy(update={"exits": "last"})
    built = None
    if (teacher.model.pretrained or teacher.model.weights) and not teacher.checkpoint:
        built = build_configured(teacher.model, data)
        if built.fresh_classifier:  # weights for other classes: fine-tune on this dataset first (cached)
            log(f"{what}: its weights classify {built.fresh_classifier} classes; fine-tuning it on {config.data.name} with CE")
        elif built.num_exits == 1:
            return built
        elif teacher.exit_heads == "frozen":
            return _train_exit_heads(config, index, teacher.model, data, runs_dir, info, log, what, {})
    if built is None:  # only its exit layout is needed here: built without downloading or reading weights
        built = build_configured(teacher.model.model_copy(update={"pretrained": False, "weights": None}), data)
    wanted = built.exit_stages
    if teacher.checkpoint:
        model, _ = load_model(teacher.checkpoint, expect=expect)
        if model.exit_stages == wanted:
            return model
        if model.num_exits > 1 or teacher.exit_heads != "frozen":
            raise EdgekdError(f"{teacher.checkpoint} has exits at stages {model.exit_stages}, the recipe asks for {wanted}. "
                              f"Give a checkpoint with those exits, or a single-exit one with exit_heads: frozen")
        backbone, identity = teacher.checkpoint, {"checkpoint": _file_identity(teacher.checkpoint)}
    elif len(wanted) == 1 or teacher.exit_heads == "joint":
        path = _train_teacher_with_ce(config, index, teacher.model, data, runs_dir, info, log, what)
        return load_model(path, expect=expect)[0]
    else:
        path = _train_teacher_with_ce(config, index, single, data, runs_dir, info, log, f"{what} backbone")
        backbone, identity = str(path), {"backbone": path.parent.parent.name}
    heads_model = teacher.model.model_copy(update={"init": backbone, "pretrained": False, "weights": None})
    return _train_exit_heads(config, index, heads_model, data, runs_dir, info, log, what, identity)


def _train_exit_heads(config: RecipeConfig, index: int, model: ModelConfig, data: DataSplits, runs_dir: Path, info: DistInfo,
                      log: Callable[[str], None], what: str, identity: dict[str, Any]) -> MultiExitNet:
    """Train teacher `index`'s exit heads on its frozen backbone (given by `model`'s init or weights); cached."""
    teacher = config.teachers[index]
    recipe = RecipeConfig(name="teacher-exits", data=config.data, student=model, method=MethodConfig(name="exit_heads"),
                          train=teacher.heads_train)
    folder = _cache_dir(runs_dir, model, config.data, {"heads_train": teacher.heads_train.model_dump(mode="json"), **identity})
    path = _train_cached(folder, recipe, data, runs_dir, info, log, f"{what} exit heads on the frozen backbone")
    return load_model(path, expect=_expected(model, data))[0]


def prepare_teachers(config: RecipeConfig, student_data: DataSplits, runs_dir: Path, info: DistInfo,
                     log: Callable[[str], None]) -> list[MultiExitNet]:
    """Each teacher from its weights, its checkpoint, the teacher cache, or trained now and cached. A
    teacher with early exits gets them as `exit_heads` says (see TeacherConfig). Each teacher trains on
    images preprocessed as its own weights want, and takes the student's images converted to that."""
    teachers = []
    for i, teacher in enumerate(config.teachers):
        data = splits_for(config.data, teacher.model, student_data)
        net = _prepare_teacher(config, i, data, runs_dir, info, log)  # its preprocess: its weights' or its checkpoint's
        net.convert_inputs(student_data.preprocess)
        teachers.append(net)
    return teachers


def splits_for(data_cfg: DataConfig, model: ModelConfig, default: DataSplits | None = None) -> DataSplits:
    """The dataset preprocessed as `model`'s weights want (`default` when that is how it already is)."""
    wanted = library_preprocess(model.name, model.weights)
    if default is not None and (wanted is None or wanted == default.preprocess):
        return default
    return build_data(data_cfg, preprocess=wanted)


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


def initialise_backbone(model: MultiExitNet, checkpoint: str) -> None:
    """Load the stages and final classifier of an edgekd checkpoint of the same backbone."""
    if not Path(checkpoint).is_file():
        raise EdgekdError(f"init checkpoint {checkpoint} does not exist")
    source, _ = load_model(checkpoint)
    try:
        model.load_backbone(source)
    except (ValueError, RuntimeError) as err:
        raise EdgekdError(f"init checkpoint {checkpoint} does not fit this model ({str(err).splitlines()[0]}); "
                          f"it must hold the same backbone at the same width") from None


def _selected_from_teacher(student: MultiExitNet, teacher: MultiExitNet, teacher_name: str) -> Selection:
    try:
        return select_weights(student, teacher)
    except SelectionError as err:
        raise EdgekdError(f"student.init: teacher cannot initialise this student from teacher 1 ({teacher_name}): {err}. "
                          f"Drop student.init, or pick a teacher of the same block type at least as deep and wide") from None


def check_teacher_init(config: RecipeConfig, data: DataSplits) -> None:
    """Refuse student.init: teacher before any teacher trains, on untrained nets of the same shapes."""
    teacher = config.teachers[0].model
    shapes_only = teacher.model_copy(update={"pretrained": False, "weights": None, "init": None})
    student = config.student.model_copy(update={"init": None})
    _selected_from_teacher(build_configured(student, data), build_configured(shapes_only, data), teacher.name)


def select_from_teacher(student: MultiExitNet, teacher: MultiExitNet, teacher_name: str, log: Callable[[str], None]) -> None:
    """student.init: teacher, the student starting from teacher 1's first blocks and channels."""
    selection = _selected_from_teacher(student, teacher, teacher_name)
    heads = ", ".join(map(str, selection.heads_from_teacher)) or "none"
    log(f"student initialised from teacher 1 ({teacher_name}) by weight selection: {selection.tensors} tensors; "
        f"exit heads from the teacher: {heads}")


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
    s = config.student
    data = splits_for(config.data, s, data)
    from_teacher = s.init == INIT_FROM_TEACHER and resume_from is None
    if from_teacher:
        check_teacher_init(config, data)
    teachers = prepare_teachers(config, data, runs_dir, info, log)
    seed_everything(config.train.seed)  # the student's init must not depend on whether teachers were cached
    student = build_configured(s, data)
    if from_teacher:
        select_from_teacher(student, teachers[0], config.teachers[0].model.name, log)
    elif s.init and resume_from is None:
        initialise_backbone(student, s.init)
    method = build_method(config.method, student, teachers)
    metadata = {
        "config": config.model_dump(mode="json"),
        "model_spec": model_spec(s, data.num_classes, data.image_size, student.exit_stages),
        "data_meta": {"classes": list(data.classes), "mean": list(data.mean), "std": list(data.std), "image_size": data.image_size,
                      "preprocess": data.preprocess.to_dict()},
    }
    trainer = Trainer(student, method, teachers, data, config.train, run_dir=run_dir, workers=config.data.workers,
                      metadata=metadata, info=info, log=log)
    log(f"{config.run_name}: {s.name} ({student.num_exits} exits) with '{config.method.name}' on {config.data.name} "
        f"[{len(data.train)} train / {len(data.val)} val / {len(data.test)} test] on {trainer.device}")
    last_record = trainer.fit(resume_from=resume_from)
    barrier(info)

    results: dict[str, Any] = {"name": config.run_name, "method": config.method.name, "exits": [e.to_dict() for e in student.exit_info]}
    last_epoch = last_record.get("epoch", config.train.epochs)
    results["last"] = {"epoch": last_epoch, "val": last_record.get("val") or _evaluate_split(student, data.val, config, trainer.device, info, config.data.workers),
                       "test": _evaluate_split(student, data.test, config, trainer.device, info, config.data.workers)}
    best_model, best_state = load_model(run_dir / "checkpoints" / "best.pt")
    best_model.to(trainer.device)
    best_test = results["last"]["test"] if best_state["epoch"] == last_epoch else \
        _evaluate_split(best_model, data.test, config, trainer.device, info, config.data.workers)  # the same weights: measured once
    results["best"] = {"epoch": best_state["epoch"], "val": best_state["metrics"]["val"], "test": best_test}
    if info.is_main:
        if best_model.source_keys:
            write_library_weights(best_model, run_dir / LIBRARY_WEIGHTS)
        (run_dir / RESULTS).write_text(json.dumps(results, indent=2))
        log(f"\n{config.run_name}: trained in {format_duration(trainer.fit_seconds)}; best epoch {results['best']['epoch']} "
            f"(selected on validation), last epoch {last_epoch}\n"
            + exit_table(results) + f"\nresults: {run_dir / RESULTS}")
    return results
