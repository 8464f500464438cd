"""`python -m edgekd.recipe NAME [--profile P] [--set k=v ...] [--resume] [--runs-dir D]`.

Loads recipes/NAME.yaml, applies the profile and overrides, and runs the pipeline: teachers
(loaded, cached or trained), the student with the recipe's method, and the per-exit evaluation.
Works under `torchrun --nproc_per_node N -m edgekd.recipe ...` for data-parallel training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekd.errors import EdgekdError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="recipe name in recipes/ (see `edgekd list recipes`) or a path to a YAML file")
    parser.add_argument("--profile", help="profile from the recipe's `profiles:` (smoke, quick; default: full protocol)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where runs go (default: runs/)")


def run(args: argparse.Namespace) -> int:
    """Run the recipe described by parsed arguments."""
    import torch.distributed as dist

    from edgekd.config import load_recipe
    from edgekd.engine.distributed import init_distributed
    from edgekd.engine.run import train_and_evaluate
    from edgekd.engine.trainer import resolve_device

    config = load_recipe(args.name, profile=args.profile, overrides=args.overrides)
    info = init_distributed(resolve_device(config.train.device).type)
    try:
        train_and_evaluate(config, args.runs_dir / config.run_name, runs_dir=args.runs_dir, resume=args.resume,
                           overwrite=args.overwrite, info=info, log=lambda m: print(m, flush=True) if info.is_main else None)
    finally:
        if dist.is_initialized():
            dist.barrier()  # no rank may tear down the group while another still talks to it
            dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekd.recipe", description=__doc__.split("\n\n")[1])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from edgekd.cli import guarded

    return guarded(run, args)


if __name__ == "__main__":
    sys.exit(main())
