"""`python -m edgekd.recipe NAME [--profile P] [--set k=v ...] [--resume] [--runs-dir D]`.

Loads recipes/NAME.yaml, applies the profile and overrides, and runs the pipeline: teachers
(loaded, cached or trained), the student with the recipe's method, and the per-exit evaluation.
Works under `torchrun --nproc_per_node N -m edgekd.recipe ...` for data-parallel training.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.errors import EdgekdError, guarded
from edgekd.install_hints import require_onnxruntime

if TYPE_CHECKING:
    from edgekd.config import RecipeConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="recipe name in recipes/ (see `edgekd list recipes`) or a path to a YAML file")
    parser.add_argument("--profile", help="profile from the recipe's `profiles:` (smoke, quick; default: full protocol)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where runs go (default: runs/)")
    parser.add_argument("--export-dir", type=Path, default=Path("export"),
                        help="where a recipe's `export:` section writes its bundle (default: export/)")
    parser.add_argument("--copy", action="store_true", help="write the recipe's YAML into the current folder to edit, "
                        "instead of running it (--overwrite replaces an existing copy)")


def copy_recipe(name: str, overwrite: bool) -> Path:
    """Write recipe NAME (one shipped with edgekd or in ./recipes) to ./NAME.yaml, unchanged."""
    from edgekd.config import recipe_path

    source = recipe_path(name)
    target = Path.cwd() / f"{source.stem}.yaml"
    if target.exists() and not overwrite:
        raise EdgekdError(f"{target} already exists; pass --overwrite to replace it")
    if target.resolve() == source.resolve():
        raise EdgekdError(f"{target} is the recipe itself; edit it in place")
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(source.read_text())
    tmp.replace(target)
    return target


def run(args: argparse.Namespace) -> int:
    """Run the recipe described by parsed arguments (or, with --copy, write it out to edit)."""
    if args.copy:
        target = copy_recipe(args.name, args.overwrite)
        print(f"written: {target} (run it with: python -m edgekd.recipe {target.name})")
        return 0
    import torch.distributed as dist

    from edgekd.recipe_loading import load_recipe
    from edgekd.engine.distributed import init_distributed
    from edgekd.engine.run import train_and_evaluate
    from edgekd.engine.timing import format_duration
    from edgekd.engine.trainer import resolve_device

    config = load_recipe(args.name, profile=args.profile, overrides=args.overrides)
    bundle = _bundle_dir(config, args)
    info = init_distributed(resolve_device(config.train.device).type)
    log = lambda m: print(m, flush=True) if info.is_main else None  # noqa: E731
    show_library_notices(info.is_main)
    start = time.perf_counter()
    try:
        run_dir = args.runs_dir / config.run_name
        train_and_evaluate(config, run_dir, runs_dir=args.runs_dir, resume=args.resume, overwrite=args.overwrite, info=info, log=log)
        trained = time.perf_counter()
        if bundle is not None and info.is_main:
            from edgekd.export.exporter import export

            export(run_dir, config.export.format, log=log, **{**config.export.options(), "out": bundle,
                                                             "overwrite": args.overwrite or None})
            log(f"exported in {format_duration(time.perf_counter() - trained)}")
        log(f"{config.run_name}: done in {format_duration(time.perf_counter() - start)}")
    finally:
        if dist.is_initialized():
            dist.barrier()  # no rank may tear down the group while another still talks to it
            dist.destroy_process_group()
    return 0


class _StdoutHandler(logging.StreamHandler):
    """A handler writing to whatever `sys.stdout` is when a record comes, so that output redirected after the
    first run in this process (a notebook cell's, a caller's `redirect_stdout`) still gets the notices."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def show_library_notices(is_main: bool) -> None:
    """Print edgekd's own info lines (a replaced classifier, for one) on the main process, as the run log does."""
    logger = logging.getLogger("edgekd")
    if is_main and not any(getattr(h, "edgekd_notices", False) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.edgekd_notices = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _bundle_dir(config: RecipeConfig, args: argparse.Namespace) -> Path | None:
    """Where the recipe's bundle goes; refused before any training if a bundle is already there or if
    onnxruntime, which checks the exported graphs, is missing."""
    if config.export is None:
        return None
    try:
        require_onnxruntime()
    except ModuleNotFoundError as err:
        raise EdgekdError(f"this recipe exports a bundle, and {err}") from None
    bundle = Path(config.export.out) if config.export.out else args.export_dir / config.run_name
    if bundle.exists() and any(bundle.iterdir()) and not args.overwrite:
        raise EdgekdError(f"{bundle} already holds a bundle; this recipe would export over it. Pass --overwrite to replace "
                          f"it, or --export-dir / --set export.out=... for another folder")
    return bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekd.recipe", description=__doc__.split("\n\n")[1])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return guarded(run, args)


if __name__ == "__main__":
    sys.exit(main())
