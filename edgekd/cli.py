"""The `edgekd` command. Subcommands import their heavy dependencies lazily, so the runtime-only
install (numpy, onnx, pillow, and onnxruntime from the cpu or gpu extra) can use the ones that need
nothing more."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, get_args

from edgekd.errors import EdgekdError, guarded


def cmd_list(args: argparse.Namespace) -> int:
    """Print the registered names of one kind, with each entry's one-line description."""
    if args.kind == "recipes":
        from edgekd.config import list_recipes, read_yaml, recipe_path

        for name in list_recipes():
            print(f"{name:<22} {_first_line(read_yaml(recipe_path(name)).get('description'))}")
        return 0
    if args.kind == "models" and args.source:
        return _list_library_models(args.source)
    if args.source:
        raise EdgekdError("--source applies to `edgekd list models`")
    registry = _registry(args.kind)
    for name in registry.names():
        entry = registry.get(name)
        # A class without its own docstring is described by its module's (one method per file).
        doc = entry.__dict__.get("__doc__") if isinstance(entry, type) else entry.__doc__
        print(f"{name:<16} {_first_line(doc or sys.modules[entry.__module__].__doc__)}")
    if args.kind == "models":
        _print_library_summary()
    return 0


def _print_library_summary() -> None:
    """One line per model library: its prefix and how many classifiers it offers here."""
    from edgekd.models.sources import LIBRARIES

    print("\nFrom model libraries (name them with their prefix; `--source NAME` lists them):")
    for prefix, library in LIBRARIES.items():
        try:
            count = f"{len(library.list_names())} models"
        except EdgekdError as err:
            count = str(err)
        print(f"{prefix + '/<name>':<22} {count}, e.g. {prefix}/{library.EXAMPLE}")


def _list_library_models(source: str) -> int:
    from edgekd.models.sources import LIBRARIES
    from edgekd.registry import unknown_name_message

    if source not in LIBRARIES:
        raise EdgekdError(unknown_name_message("model source", source, list(LIBRARIES)))
    for name in LIBRARIES[source].list_names():
        print(f"{source}/{name}")
    return 0


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _registry(kind: str) -> Any:
    if kind == "models":
        from edgekd.models import MODELS

        return MODELS
    if kind == "methods":
        from edgekd.methods import METHODS

        return METHODS
    from edgekd.data import DATASETS

    return DATASETS


def cmd_doctor(args: argparse.Namespace) -> int:
    from edgekd.doctor import report

    print(report(args.bundle))
    return 0


def cmd_recipe(args: argparse.Namespace) -> int:
    from edgekd.recipe import run

    return run(args)


def cmd_report(args: argparse.Namespace) -> int:
    from edgekd.report import write_report

    print(write_report(args.runs, args.out, plots=not args.no_plots))
    print(f"\nwritten: {args.out / 'report.md'}" + ("" if args.no_plots else " and its plots"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from edgekd.export.formats import check_request

    options = {"out": args.out, "opset": args.opset, "overwrite": args.overwrite or None, "precision": args.precision,
               "max_batch": args.max_batch, "calib_images": args.calib_images, "int8_scheme": args.int8_scheme,
               "max_int8_drop": args.max_int8_drop}
    check_request(args.format, options)  # before importing torch: a typo fails at once
    from edgekd.export.exporter import export

    export(args.source, args.format, **options)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from edgekd.runtime import EarlyExitModel

    model = EarlyExitModel(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads,
                           provider_options=_provider_options(args.provider_option), shared_threads=True)
    result = model.predict([str(p) for p in args.images], mode=args.mode, exit=args.exit)
    if args.json:
        print(json.dumps({"predictions": [{"image": str(p), **r} for p, r in zip(args.images, result.to_records())],
                          "timings_ms": {k: round(v * 1e3, 3) for k, v in result.timings.items()}}, indent=2))
        return 0
    for path, record in zip(args.images, result.to_records()):
        print(f"{path}: {record['class']} (confidence {record['confidence']:.3f}, exit {record['exit']})")
    print("time: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in result.timings.items()))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from edgekd.runtime.calibration import calibrate_bundle

    if (args.target_drop is None) == (args.budget is None):
        raise EdgekdError("give exactly one of --target-drop POINTS or --budget FRACTION")
    if args.certify_test is not None and args.confidence is None:
        raise EdgekdError("--certify-test chooses how --confidence certifies the target; give --confidence too (e.g. 0.9)")
    calibrate_bundle(args.bundle, args.data, target_drop=args.target_drop, budget=args.budget, policy=args.policy,
                     temperature=args.temperature, running_ensemble=args.running_ensemble, agreement=args.agreement,
                     gate=args.gate, final_ensemble=args.final_ensemble, margin=args.margin, confidence=args.confidence,
                     certify_test=args.certify_test or "exact", precision=args.precision)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edgekd.runtime.bench import run_bench, save, summary_lines

    report = run_bench(args.bundle, args.data, repeats=args.repeats, batch=args.batch, backend=args.backend,
                       precision=args.precision, provider_options=_provider_options(args.provider_option), threads=args.threads,
                       limit=args.limit, passes=args.passes, single_call=not args.no_single_call)
    print("\n".join(summary_lines(report)))
    out = args.out or Path("reports") / f"bench-{Path(args.bundle).resolve().name}-{report['backend']}-{report['precision']}"
    print("written: " + ", ".join(str(p) for p in save(report, out)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from edgekd.demo.app import serve
    except ModuleNotFoundError as err:
        raise EdgekdError(f"the demo needs {err.name}: pip install 'edgekd[demo]'") from None
    print(f"edgekd demo on http://{args.host}:{args.port or 7860} (Ctrl+C stops it)")
    serve(args.bundle, teacher_bundle=args.teacher_bundle, data=args.data, host=args.host, port=args.port)
    return 0


def _provider_options(pairs: list[str] | None) -> dict[str, str]:
    """KEY=VALUE strings -> the provider options dict (onnxruntime takes string values)."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EdgekdError(f"--provider-option takes KEY=VALUE (e.g. device_id=0), got '{pair}'")
        options[key] = value
    return options


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="cpu",
                        help="what runs the graphs: onnxruntime's cpu (default), cuda or tensorrt provider, or the native "
                             "tensorrt-engines built on this device (edgekd.runtime.backends)")
    parser.add_argument("--precision", help="the bundle's graphs to run: fp32 (default), fp16, int8, int8-u8s8 (each needs "
                        "the export that writes it); the engines run in the precision they were built with")
    parser.add_argument("--provider-option", action="append", metavar="KEY=VALUE",
                        help="an onnxruntime provider option for the backend's provider, e.g. device_id=1 (repeatable)")
    parser.add_argument("--threads", type=int, help="intra-op threads per session (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    from edgekd import __version__
    from edgekd.bundle.manifest import DropTest
    from edgekd.recipe import add_arguments

    parser = argparse.ArgumentParser(prog="edgekd", description="Distill, export and run multi-exit edge models.")
    parser.add_argument("--version", action="version", version=f"edgekd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    recipe = sub.add_parser("recipe", aliases=["train"], help="run a recipe (same as python -m edgekd.recipe)")
    add_arguments(recipe)
    recipe.set_defaults(func=cmd_recipe)
    listing = sub.add_parser("list", help="list recipes, models, methods or datasets")
    listing.add_argument("kind", choices=["recipes", "models", "methods", "datasets"])
    listing.add_argument("--source", help="models: list every model of a library (timm, torchvision)")
    listing.set_defaults(func=cmd_list)
    from edgekd.export.formats import FORMATS

    exporter = sub.add_parser("export", help="a finished run -> deploy bundle (ONNX, INT8 ONNX, TensorRT engines)",
                              description="Formats: " + "; ".join(f"{f.name}: {f.summary} (options: {', '.join(f.options)})"
                                                                  for f in FORMATS.values()))
    exporter.add_argument("source", help="a run folder (runs/NAME), or an ONNX bundle for --format tensorrt")
    exporter.add_argument("--format", default="onnx", help=f"one of {', '.join(FORMATS)} (default: onnx)")
    exporter.add_argument("--out", type=Path, help="bundle folder (default: export/<run name>)")
    exporter.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    exporter.add_argument("--precision", choices=["fp16", "int8", "fp32"],
                          help="tensorrt: the bundle's graphs the strongly typed engines are built from (default fp16 where "
                               "the bundle has them, else fp32; int8 needs the symmetric onnx-int8 graphs)")
    exporter.add_argument("--max-batch", type=int, help="tensorrt: the largest batch the engines' profiles cover (default 64)")
    exporter.add_argument("--calib-images", type=int, help="onnx-int8: training images used for calibration (default 256)")
    exporter.add_argument("--int8-scheme", choices=["symmetric", "u8s8"],
                          help="onnx-int8: symmetric int8 Q/DQ (default; what TensorRT reads) or u8s8 (onnxruntime CPU only)")
    exporter.add_argument("--max-int8-drop", type=float, metavar="POINTS",
                          help="onnx-int8: keep the most sensitive nodes in FP32 until no exit loses more than POINTS of "
                               "validation top-1; refuse the bundle if that is not enough")
    exporter.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    exporter.set_defaults(func=cmd_export)
    predict = sub.add_parser("predict", help="classify images with a bundle (early exits)")
    predict.add_argument("bundle")
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--mode", default="auto", choices=["auto", "early", "exit", "all"],
                         help="early: calibrated thresholds; exit: always --exit K; all: every exit + ensemble; auto: early if calibrated")
    predict.add_argument("--exit", type=int, help="with --mode exit: which exit (1-based)")
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    _runtime_options(predict)
    predict.set_defaults(func=cmd_predict)
    calib = sub.add_parser("calibrate", help="choose exit thresholds on validation images and store them in the bundle")
    calib.add_argument("bundle")
    calib.add_argument("--data", type=Path, help="ImageFolder root: val/ is used, else the run's split of train/ "
                       "(default: the validation sample stored in the bundle)")
    calib.add_argument("--target-drop", type=float, help="smallest cost within this many accuracy points of the final exit")
    calib.add_argument("--budget", type=float, help="best accuracy within this fraction of the model's FLOPs")
    calib.add_argument("--policy", default="max_prob",
                       help="exit policy: max_prob, entropy, margin, or auto (each of them with and without --temperature, "
                            "--running-ensemble and --agreement, and the --gate; the one whose scores best predict a drop on "
                            "validation, by AUROC, is kept; then with and without --final-ensemble, the cheaper kept)")
    calib.add_argument("--temperature", action="store_true", help="fit a temperature per exit on the validation images first")
    calib.add_argument("--running-ensemble", action="store_true",
                       help="early exits answer with the geometric ensemble of the exits so far, and are scored on it")
    calib.add_argument("--agreement", action="store_true",
                       help="an early exit's score is 0 where its top-1 class differs from the previous exit's")
    calib.add_argument("--gate", action="store_true",
                       help="score the early exits with a learned gate (a logistic regression over the exit's and the running "
                            "ensemble's max-prob, margin and entropy, and agreement), fitted where the thresholds are searched")
    calib.add_argument("--final-ensemble", action="store_true",
                       help="the final exit answers with the geometric ensemble of every exit (it has paid for their logits "
                            "already); the drop is still measured against the final exit alone")
    calib.add_argument("--margin", type=float, default=0.0, help="extra accuracy points held in reserve")
    calib.add_argument("--precision", help="calibrate the bundle's fp16 or int8 graphs on their own scores and store the "
                       "thresholds with them (default: fp32, used by every precision without its own)")
    calib.add_argument("--confidence", type=float,
                       help="with --target-drop: search on half of the validation images and certify the target on the "
                            "other half, so that P(drop <= target) >= this level on new data (e.g. 0.9); refused, with "
                            "the number of images needed, when the data cannot support it")
    calib.add_argument("--certify-test", choices=list(get_args(DropTest)),
                       help="with --confidence: the test of the drop on the certify half; exact (the exact unconditional "
                            "score test for paired proportions, the default and the more powerful) or betting (a betting martingale)")
    calib.set_defaults(func=cmd_calibrate)
    bench = sub.add_parser("bench", help="per-exit accuracy/latency, early-exit curve, oracle, calibrated point (JSON + PNG)")
    bench.add_argument("bundle")
    bench.add_argument("--data", required=True, type=Path, help="ImageFolder root; its test/ split is measured")
    bench.add_argument("--repeats", type=int, default=50, help="timed repeats per latency (median)")
    bench.add_argument("--batch", type=int, default=64, help="batch size of the throughput comparison")
    bench.add_argument("--passes", type=int, default=3, help="batch-1 passes over the test images, early exit and full (median)")
    bench.add_argument("--limit", type=int, help="use only the first N test images")
    bench.add_argument("--no-single-call", action="store_true",
                       help="time single images through the segment chain, not in one call of the joined graph (to compare)")
    bench.add_argument("--out", type=Path, help="folder for bench.json and bench.png (default: reports/bench-<bundle>-<precision>)")
    _runtime_options(bench)
    bench.set_defaults(func=cmd_bench)
    demo = sub.add_parser("demo", help="Gradio demo over a bundle: predictions, accuracy/latency trade-off, model card")
    demo.add_argument("bundle")
    demo.add_argument("--teacher-bundle", type=Path, help="a teacher's bundle, shown side by side")
    demo.add_argument("--data", type=Path, help="ImageFolder root for the trade-off (default: the bundle's validation sample)")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    demo.add_argument("--port", type=int, help="port (default: 7860 or the next free one)")
    demo.set_defaults(func=cmd_demo)
    report = sub.add_parser("report", help="compare finished runs: per-exit accuracy table (mean ± std over seeds) and plots")
    report.add_argument("runs", nargs="+", help="run folders (runs/kd_resnet18) or folders of runs (runs/)")
    report.add_argument("--out", type=Path, default=Path("reports"), help="where report.md and the PNG plots go (default: reports)")
    report.add_argument("--no-plots", action="store_true", help="write the markdown only")
    report.set_defaults(func=cmd_report)
    doctor = sub.add_parser("doctor", help="versions, CUDA, TensorRT and onnxruntime providers, and install problems")
    doctor.add_argument("--bundle", type=Path, help="also say which of this bundle's precisions run on this machine")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        return _refuse_unknown(parser, args, unknown)
    return guarded(args.func, args)


def _refuse_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> int:
    """An unknown option gets the closest valid one of its subcommand instead of argparse's usage dump."""
    from edgekd.registry import closest

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
    valid = [o for action in sub._actions for o in action.option_strings if o.startswith("--")]
    flag = unknown[0].split("=")[0]
    hint = closest(flag, valid)
    print(f"error: unknown option {flag} for 'edgekd {args.command}'" + (f"; did you mean {hint}?" if hint else "")
          + f" Options: {', '.join(valid)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
