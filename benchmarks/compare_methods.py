"""Every distillation method on the same data, teacher, student and budget, then `edgekd report`.

Each method keeps its own `method:` section from its recipe; everything else is shared: a narrow
ResNet34 teacher and a narrow 4-exit ResNet18 student on real CIFAR-10 images (ImageFolder), the
same epochs, batch size and schedule. Where a method needs more than that, it gets only what it
needs, printed before the runs start:
- oto and mtkd_ssr: the same teacher with exit heads trained on its frozen backbone;
- demkd: two more narrow teachers (VGG13, ResNet32x4) beside the shared one;
- dkd and demkd: the logit-term warm-up shortened in proportion to the epochs;
- skd: Adam at a constant lr, as its paper trains (the epochs split into its 6 phases: stem, 4 stages, classifier).
Variants on request: `mskd_phased` (MSKD's phased schedule) and `oto_joint` (OtO with a 4-exit
teacher trained from scratch instead of heads on the frozen teacher).

    python benchmarks/compare_methods.py --data ../data/cifar10 [--seeds 0 1] [--epochs 8] [--fraction 0.5]
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

from edgekd.config import deep_merge, read_yaml, recipe_path
from edgekd.recipe_loading import resolve_recipe
from edgekd.engine.run import train_and_evaluate
from edgekd.report import write_report

RECIPES = {"ce": "ce_resnet18", "kd": "kd_resnet18", "dkd": "dkd_resnet8x4", "mskd": "mskd_resnet18", "oto": "oto_resnet18",
           "skd": "skd_resnet18", "mtkd_ssr": "mtkd_ssr_resnet18", "demkd": "demkd_vgg8",
           "mskd_phased": "mskd_resnet18", "oto_joint": "oto_resnet18"}  # the last two: the other reading / teacher


def shared_setup(args: argparse.Namespace) -> dict:
    teacher_train = {"epochs": args.teacher_epochs, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "schedule": "cosine",
                     "warmup_epochs": 0.5, "weight_decay": 5e-4}
    return {
        "data": {"name": "imagefolder", "root": str(args.data), "image_size": 32, "val_size": args.val_size,
                 "train_fraction": args.fraction, "augment": "cifar", "workers": args.workers},
        "teachers": [{"model": {"name": "resnet34", "exits": "last", "width": args.teacher_width}, "train": teacher_train}],
        "student": {"name": "resnet18", "exits": "all", "head": "bottleneck", "width": args.student_width},
        "train": {"epochs": args.epochs, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
                  "schedule": "cosine", "warmup_epochs": 0.5},
    }


def method_setup(method: str, shared: dict, args: argparse.Namespace) -> dict:
    """The shared setup plus the one method's section and the extras it needs (see the module doc)."""
    raw = copy.deepcopy(shared)
    recipe = read_yaml(recipe_path(RECIPES[method]))
    raw.update(name=f"compare_{method}{args.tag}", method=recipe["method"])
    teacher = raw["teachers"][0]
    if method == "mskd_phased":
        raw["method"]["schedule"] = "phased"
    if method == "ce":
        raw["teachers"] = []
    if method == "oto_joint":  # OtO's teacher variant (b): the 4-exit teacher trained from scratch
        teacher["model"]["exits"] = "all"
        teacher["exit_heads"] = "joint"
    if method in ("oto", "mtkd_ssr"):
        teacher["model"]["exits"] = "all"
        teacher.update(exit_heads="frozen", heads_train={"epochs": args.heads_epochs, "optimizer": "adamw", "lr": 3e-3,
                                                         "weight_decay": 0.0, "schedule": "cosine"})
    if method in ("dkd", "demkd"):
        raw["method"]["warmup"] = max(1, round(args.epochs * 20 / 240))
    if method == "demkd":
        extra_train = teacher["train"]
        raw["teachers"] += [{"model": {"name": "vgg13", "exits": "last", "width": args.teacher_width}, "train": extra_train},
                            {"model": {"name": "resnet32x4", "exits": "last", "width": args.teacher_width}, "train": extra_train}]
    if method == "skd":
        raw["train"] = deep_merge(raw["train"], {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.0, "schedule": "constant",
                                                 "warmup_epochs": 0.0})
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="CIFAR-10 as ImageFolder (train/, test/)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/compare"))
    parser.add_argument("--methods", nargs="+", default=list(RECIPES)[:8], choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--heads-epochs", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the training images used (after the val split)")
    parser.add_argument("--val-size", type=int, default=2500)
    parser.add_argument("--student-width", type=float, default=0.25)
    parser.add_argument("--teacher-width", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tag", default="", help="suffix for the run names, e.g. -e20 for a longer budget beside the default")
    args = parser.parse_args()

    shared = shared_setup(args)
    runs = []
    for seed in args.seeds:
        for method in args.methods:
            raw = method_setup(method, shared, args)
            raw["train"]["seed"] = seed
            config = resolve_recipe(raw, source=raw["name"])
            run_dir = args.runs_dir / config.run_name
            start = time.perf_counter()
            if not (run_dir / "results.json").exists():
                train_and_evaluate(config, run_dir, runs_dir=args.runs_dir, resume=run_dir.exists())
            print(f"== {config.run_name}: {time.perf_counter() - start:.0f} s")
            runs.append(str(run_dir))
    print(write_report(runs, args.runs_dir / "report"))


if __name__ == "__main__":
    main()
