"""`edgekd export`: a finished run -> a deploy bundle, written whole or not at all.

The bundle is built in a hidden folder beside its destination and moved into place only when
every graph has passed `onnx.checker` and the parity check, so a failed or interrupted export
leaves nothing half-written (and an existing bundle untouched unless `overwrite`).
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import onnx
import torch

from edgekd import __version__
from edgekd.errors import EdgekdError
from edgekd.export.bundle import MANIFEST, write_manifest
from edgekd.export.formats import check_request
from edgekd.export.onnx_graphs import export_graph, feature_shapes, graph_specs
from edgekd.export.parity import check_onnx, check_parity, graph_input
from edgekd.export.samples import write_samples
from edgekd.models import MultiExitNet

INT8_DIR = "int8"


def default_out(run_dir: Path) -> Path:
    return Path("export") / run_dir.resolve().name


def export(source: str | Path, fmt: str, *, log: Callable[[str], None] = print, **options: Any) -> Path:
    """Export the run (or, for `tensorrt`, the ONNX bundle) at `source` as `fmt`; returns the bundle folder."""
    source = Path(source)
    opts = check_request(fmt, options)
    if fmt == "tensorrt":
        from edgekd.export.tensorrt import build_engines

        return build_engines(source, opts, log=log)
    if (source / MANIFEST).is_file():
        raise EdgekdError(f"{source} is already an exported bundle; export the run folder it came from (runs/<name>), "
                          f"or build TensorRT engines from it with --format tensorrt")
    checkpoint, results = source / "checkpoints" / "best.pt", source / "results.json"
    if not checkpoint.is_file() or not results.is_file():
        raise EdgekdError(f"{source} is not a finished edgekd run (it needs checkpoints/best.pt and results.json); "
                          f"train it with `python -m edgekd.recipe NAME` first")
    out = Path(opts.get("out") or default_out(source))
    if out.exists() and any(out.iterdir()) and not opts.get("overwrite"):
        raise EdgekdError(f"{out} already holds a bundle; pass --overwrite to replace it, or --out for another folder")
    from edgekd.engine.model_io import load_model

    net, state = load_model(checkpoint)
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        manifest = _write_onnx_bundle(net, state, json.loads(results.read_text()), staging, fmt, opts, log)
        _embed_manifest(staging, manifest)
        write_manifest(staging, manifest)
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"bundle written: {out} ({len(manifest['files'])} files)")
    return out


def _write_onnx_bundle(net: MultiExitNet, state: dict[str, Any], results: dict[str, Any], folder: Path, fmt: str,
                       opts: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    net = net.cpu().float().eval()
    specs = graph_specs(net)
    example_gen = torch.Generator().manual_seed(0)
    parity, files = {}, []
    for spec in specs:
        path = folder / spec.file
        export_graph(spec, path, opts["opset"], graph_input(net, spec, 2, example_gen))
        check_onnx(path)
        parity[spec.name] = check_parity(net, spec, path)
        files.append(spec.file)
        log(f"{spec.name:>10}: max |logit diff| vs PyTorch {parity[spec.name]['max_abs_logit_diff']:.2e} "
            f"at batch {', '.join(map(str, parity[spec.name]['batches']))}; same argmax: {parity[spec.name]['argmax_equal']}")
    manifest = _manifest(net, state, results, specs, fmt, opts, parity)
    data = _run_data(state, fmt, log)
    if data is not None:
        sample_files, entries = write_samples(folder, data, log=log)
        manifest.update(entries)
        files += sample_files
    if fmt == "onnx-int8":
        from edgekd.export.int8 import add_int8

        manifest["int8"] = add_int8(folder, specs, data, opts["calib_images"], INT8_DIR, log)
        files += manifest["int8"]["files"]
    manifest["files"] = {name: "" for name in files}
    return manifest


def _run_data(state: dict[str, Any], fmt: str, log: Callable[[str], None]) -> Any:
    """The run's data splits, built once for the validation sample and INT8 calibration. INT8 cannot do
    without them; a plain ONNX bundle is written without its validation sample when they are missing."""
    from edgekd.config import RecipeConfig
    from edgekd.data import build_data

    try:
        return build_data(RecipeConfig.model_validate(state["config"]).data)
    except EdgekdError as err:
        if fmt == "onnx-int8":
            raise EdgekdError(f"INT8 calibration needs the run's training images, which are not available here ({err})") from None
        log(f"validation sample and examples not stored: the run's data is not available here ({err})")
        return None


def _manifest(net: MultiExitNet, state: dict[str, Any], results: dict[str, Any], specs: list, fmt: str,
              opts: dict[str, Any], parity: dict[str, Any]) -> dict[str, Any]:
    meta = state["data_meta"]
    size = meta["image_size"]
    pre = net.preprocess  # the weights' own, or for an edgekd backbone what it trained on (load_model)
    shapes = feature_shapes(net)
    val_top1 = results["best"]["val"]["top1"]
    exits = [{**info.to_dict(), "segment": f"segment_{info.index}", "prefix": f"prefix_{info.index}",
              "feature_shape": list(shapes[info.index - 1]), "val_top1": val_top1[info.index - 1]} for info in net.exit_info]
    config = state.get("config", {})
    return {
        "format": fmt,
        "edgekd_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "opset": opts["opset"],
        "source": {"run": results["name"], "method": config.get("method", {}).get("name"), "model": state["model_spec"],
                   "checkpoint": "best", "epoch": state.get("epoch")},
        "input": {"name": "image", "shape": [3, size, size], "dtype": "float32", "layout": "NCHW"},
        "preprocess": {"resize": pre.resize_for(size), "crop": size, "interpolation": pre.interpolation,
                       "scale": 1 / 255, "mean": list(pre.mean), "std": list(pre.std)},
        "classes": meta["classes"],
        "validation": {k: config.get("data", {}).get(k) for k in ("name", "val_size", "seed")},
        "exits": exits,
        "ensemble_val_top1": results["best"]["val"]["ensemble_top1"],
        "graphs": {s.name: {"file": s.file, "inputs": s.inputs, "outputs": s.outputs} for s in specs},
        "parity": parity,
        "policy": None,
        "thresholds": None,
    }


def _embed_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Copy the manifest (without the file hashes, which cannot include themselves) into each graph's metadata."""
    text = json.dumps({k: v for k, v in manifest.items() if k != "files"})
    for name in (n for n in manifest["files"] if n.endswith(".onnx")):
        model = onnx.load(str(folder / name))
        del model.metadata_props[:]
        entry = model.metadata_props.add()
        entry.key, entry.value = "edgekd_manifest", text
        onnx.save(model, str(folder / name))


def _move_into_place(staging: Path, out: Path) -> None:
    """Swap the finished bundle in; an old bundle is removed only after the new one is in place."""
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)

