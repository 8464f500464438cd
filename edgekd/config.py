"""The typed recipe schema, recipe files, profiles and `--set` overrides: a pure schema that
imports nothing else of edgekd's but its error type and name matching, so data/, models/ and
methods/ take these types directly. Whether the names a recipe uses exist (datasets, models,
methods) is checked one layer up, in `edgekd.recipe_loading`.

A recipe is YAML read with `yaml.safe_load` (no tags that run code). Resolution order:
file -> profile overrides -> `--set key=value` overrides -> teacher `train:` overrides merged onto
the recipe's `train:` (all but its seed) -> validation. An unknown key fails with its path and the closest valid
key; a wrong type or range names the field.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgekd.errors import EdgekdError
from edgekd.registry import closest, unknown_name_message


def _shipped_recipes() -> Path:
    """The recipes that come with edgekd: the package edgekd.recipes of an installed wheel, or the
    top-level recipes/ folder of a source checkout (an editable install)."""
    package = Path(__file__).resolve().parent
    installed = package / "recipes"
    return installed if installed.is_dir() else package.parent / "recipes"


RECIPES_DIR = _shipped_recipes()


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Which images, how they are split and augmented, and how they are loaded."""

    name: str = "cifar100"
    root: str = Field(default_factory=lambda: os.environ.get("EDGEKD_DATA", "data"))
    download: bool = True
    image_size: int = Field(32, ge=8, le=1024)
    val_size: float = Field(0.1, gt=0, description="fraction of train (< 1) or a number of images")
    train_fraction: float = Field(1.0, gt=0, le=1.0)
    test_fraction: float = Field(1.0, gt=0, le=1.0, description="a stratified, seeded share of the test split (smoke runs)")
    train_size: int = Field(20000, ge=10, description="shapes only: number of training images")
    test_size: int = Field(4000, ge=10, description="shapes only: number of test images")
    augment: str = "auto"
    seed: int = 0
    workers: int = Field(2, ge=0)


INIT_FROM_TEACHER = "teacher"  # student.init: weights selected from teacher 1 (edgekd.models.weight_selection)


class ModelConfig(Section):
    """A multi-exit network: an edgekd backbone (`resnet18`) or a timm / torchvision classifier
    (`timm/convnext_atto`, `torchvision/resnet50`) with its pretrained weights (edgekd.models.sources)."""

    name: str
    exits: Union[Literal["all", "last"], list[int]] = "all"
    head: Union[str, list[str]] = Field("bottleneck", description="the early exits' head (edgekd.models.heads): one kind for "
                                        "all, or a list with one per early exit, shallow to deep ([strided, bottleneck, bottleneck])")
    width: float = Field(1.0, gt=0)
    pretrained: bool = Field(False, description="timm/torchvision only: the library's default pretrained weights, downloaded by the library")
    weights: Optional[str] = Field(None, description="timm/torchvision only: a state_dict file (.safetensors, .pth, .pt) or torchvision weights name (IMAGENET1K_V2)")
    init: Optional[str] = Field(None, description="edgekd checkpoint whose stages and final classifier initialise this model; "
                                "for the student also `teacher`: the first blocks and channels of teacher 1 (weight selection)")

    @model_validator(mode="after")
    def _one_weight_source(self) -> "ModelConfig":
        if self.pretrained and self.weights:
            raise ValueError(f"give either pretrained: true or weights: {self.weights}, not both")
        return self


class ProgressiveResizeConfig(Section):
    """Train the first epochs on smaller images (see edgekd.engine.resize)."""

    initial_scale: float = Field(0.5, gt=0, le=1, description="side of epoch 1's images as a fraction of data.image_size")
    finetune_fraction: float = Field(0.25, ge=0, lt=1, description="the last fraction of epochs, at full size")
    size_multiple: int = Field(4, ge=1)


class TrainConfig(Section):
    """One training run: optimizer, schedule, precision, seed."""

    epochs: int = Field(240, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["multistep", "cosine", "constant"] = "multistep"
    milestones: list[int] = [150, 180, 210]
    lr_decay: float = Field(0.1, gt=0, le=1)
    warmup_epochs: float = Field(0.0, ge=0)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = False
    gradient_equilibrium: bool = Field(False, description="multi-exit students: rescale the shared trunks' gradients so "
                                       "each exit's share is equal (IMTA's gradient equilibrium); inference is unchanged")
    feature_partition: Optional[float] = Field(None, gt=0, lt=1, description="multi-exit students: DFS feature "
                                               "partitioning, the share of each early exit's feature channels that only "
                                               "the deeper exits train (the rest only that exit's head); DFS uses 0.5; "
                                               "inference is unchanged")
    progressive_resize: Optional[ProgressiveResizeConfig] = None
    teacher_cache_views: int = Field(0, ge=0, le=64, description="fixed augmented views per training image whose teacher "
                                     "logits are computed once (edgekd.engine.teacher_cache); 0: teachers run every step")
    loggers: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list, description="experiment loggers beside metrics.jsonl (always written): TensorBoard event "
        "files in <run>/tensorboard, an MLflow file store in <run>/mlruns")
    grad_clip: Optional[float] = Field(None, gt=0)
    select: Literal["final", "ensemble"] = "final"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0

    @model_validator(mode="after")
    def _check_schedule(self) -> "TrainConfig":
        if self.schedule == "multistep" and sorted(self.milestones) != self.milestones:
            raise ValueError(f"train.milestones must be increasing, got {self.milestones}")
        return self


# How a teacher's early-exit heads are trained on its frozen backbone unless `heads_train` says
# otherwise: SDN's IC-only protocol (25 epochs, lr 1e-3, x0.1 at epoch 15), best epoch picked on the
# ensemble since the final exit does not change.
HEADS_TRAIN_DEFAULTS = {"epochs": 25, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.0,
                        "schedule": "multistep", "milestones": [15], "warmup_epochs": 0.0, "select": "ensemble"}


class TeacherConfig(Section):
    """A frozen teacher: loaded from `checkpoint`, or trained with CE (and cached) when absent.
    `train` holds overrides of the recipe's `train:` for training the teacher.

    A teacher with early exits (`model.exits` other than `last`, for OtO and MTKD-SSR) gets them one
    of two ways: `exit_heads: frozen` trains the backbone as a plain classifier (or loads
    `checkpoint`), then only the heads with CE on the frozen backbone (`heads_train`);
    `exit_heads: joint` trains the whole multi-exit network from scratch with CE at every exit.
    """

    model: ModelConfig
    checkpoint: Optional[str] = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    exit_heads: Literal["frozen", "joint"] = "frozen"
    heads_train: TrainConfig = Field(default_factory=lambda: TrainConfig(**HEADS_TRAIN_DEFAULTS))


class ExportConfig(Section):
    """Export the finished run as a deploy bundle, as `edgekd export` would (same formats and options)."""

    format: str = "onnx"
    out: Optional[str] = Field(None, description="bundle folder (default: <--export-dir>/<run name>)")
    opset: Optional[int] = None
    calib_images: Optional[int] = None
    int8_scheme: Optional[str] = None
    max_int8_drop: Optional[float] = None
    precision: Optional[str] = None
    max_batch: Optional[int] = None

    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude={"format"})


class MethodConfig(BaseModel):
    """`name` picks a registered method; the other keys are that method's parameters."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RecipeConfig(Section):
    """A whole recipe, resolved: what `runs/<name>/config.yaml` holds."""

    name: str
    description: str = ""
    profile: Optional[str] = None
    data: DataConfig = Field(default_factory=DataConfig)
    teachers: list[TeacherConfig] = []
    student: ModelConfig
    method: MethodConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: Optional[ExportConfig] = None

    @model_validator(mode="after")
    def _teacher_init_has_a_teacher(self) -> "RecipeConfig":
        if self.student.init == INIT_FROM_TEACHER and not self.teachers:
            raise ValueError("student.init: teacher needs a teacher; add one under teachers: or give init a checkpoint file")
        for i, teacher in enumerate(self.teachers):
            if teacher.model.init == INIT_FROM_TEACHER:
                raise ValueError(f"teachers[{i}].model.init: teacher is for the student only; give the teacher a checkpoint file")
        return self

    @property
    def run_name(self) -> str:
        """`name[-profile][-seedN]`: runs of several seeds sit side by side."""
        profile = f"-{self.profile}" if self.profile else ""
        seed = f"-seed{self.train.seed}" if self.train.seed else ""
        return f"{self.name}{profile}{seed}"


# ---------------------------------------------------------------- unknown keys with suggestions


def _model_of(annotation: Any) -> Any:
    """The BaseModel class inside an annotation (Optional[X], list[X], X), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _check_keys(raw: Any, model: type[BaseModel], path: str) -> None:
    if not isinstance(raw, dict) or model.model_config.get("extra") == "allow":
        return
    fields = model.model_fields
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            hint = closest(str(key), list(fields))
            suggestion = f"; did you mean '{(path + '.') if path else ''}{hint}'?" if hint else ""
            raise EdgekdError(f"unknown key '{where}'{suggestion} Valid keys here: {', '.join(fields)}")
        annotation = fields[key].annotation
        sub = _model_of(annotation)
        if sub is None:
            continue
        if get_origin(annotation) is list and isinstance(value, list):
            for i, item in enumerate(value):
                _check_keys(item, sub, f"{where}.{i}")
        else:
            _check_keys(value, sub, where)


def _format_validation_error(err: ValidationError, recipe: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        lines.append(f"  {loc}: {e['msg']}{got}")
    return f"recipe '{recipe}' is invalid:\n" + "\n".join(lines)


# ---------------------------------------------------------------- merging and overrides


def deep_merge(base: dict, override: dict) -> dict:
    """`override` merged into a copy of `base`; nested dicts merge, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_set(raw: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (5, 0.1, [1,2], true)."""
    if "=" not in assignment:
        raise EdgekdError(f"--set expects key=value (e.g. train.epochs=5), got '{assignment}'")
    key, text = assignment.split("=", 1)
    value = yaml.safe_load(text) if text.strip() else None
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise EdgekdError(f"--set {key}: '{'.'.join(parts[:i + 1])}' is not an index of a {len(node)}-item list")
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise EdgekdError(f"--set {key}: '{'.'.join(parts[:i + 1])}' is a value, not a section")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise EdgekdError(f"--set {key}: '{last}' is not an index of a {len(node)}-item list")
        node[int(last)] = value
    else:
        node[last] = value


# ---------------------------------------------------------------- recipe files


def recipe_path(name: str) -> Path:
    """`name` as a path to a YAML file, or the recipe of that name in ./recipes or edgekd's recipes."""
    as_path = Path(name)
    if as_path.suffix in (".yaml", ".yml"):
        if not as_path.is_file():
            raise EdgekdError(f"recipe file {as_path} does not exist")
        return as_path
    for folder in (Path.cwd() / "recipes", RECIPES_DIR):
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    raise EdgekdError(unknown_name_message("recipe", name, list_recipes()))


def list_recipes() -> list[str]:
    names = {p.stem for folder in (Path.cwd() / "recipes", RECIPES_DIR) if folder.is_dir() for p in folder.glob("*.yaml")}
    return sorted(names)


def read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise EdgekdError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise EdgekdError(f"{path} must hold a mapping of sections (data, student, method, train, ...)")
    return raw


def resolve(raw: dict, *, profile: str | None = None, overrides: list[str] = (), source: str = "recipe") -> RecipeConfig:
    """Apply a profile and `--set` overrides to a raw recipe dict and validate it against the schema
    (the names it refers to are checked by `edgekd.recipe_loading`)."""
    raw = copy.deepcopy(raw)
    profiles = raw.pop("profiles", None) or {}
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise EdgekdError(f"recipe '{source}' has no profile '{profile}'. Profiles: {known}")
        raw = deep_merge(raw, profiles[profile])
        raw["profile"] = profile
    for assignment in overrides:
        apply_set(raw, assignment)
    _check_keys(raw, RecipeConfig, "")
    # Teachers train like the student unless told otherwise, but keep their own seed: runs of
    # the student with several seeds must share one teacher.
    inherited = {k: v for k, v in (raw.get("train") or {}).items() if k != "seed"}
    for teacher in raw.get("teachers") or []:
        if isinstance(teacher, dict):
            teacher["train"] = deep_merge(inherited, teacher.get("train") or {})
            heads_base = deep_merge({k: v for k, v in teacher["train"].items() if k != "seed"}, HEADS_TRAIN_DEFAULTS)
            teacher["heads_train"] = deep_merge(heads_base, teacher.get("heads_train") or {})
    try:
        return RecipeConfig.model_validate(raw)
    except ValidationError as err:
        raise EdgekdError(_format_validation_error(err, source)) from None


def dump_config(config: RecipeConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
