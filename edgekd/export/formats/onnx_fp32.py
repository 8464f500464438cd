"""The `onnx` format, which every other builds on: FP32 graphs per segment, per prefix and in full,
each checked by onnx.checker and against PyTorch, the manifest, and (where the run's data is here) a
validation sample and example images."""
from __future__ import annotations

import datetime as dt
from typing import Any

import torch

from edgekd import __version__
from edgekd.bundle import Manifest, names
from edgekd.export.job import ExportJob, TrainedRun
from edgekd.export.onnx_graphs import GraphSpec, export_graph, feature_shapes, graph_specs
from edgekd.export.parity import check_onnx, check_parity, check_row_gather, graph_input
from edgekd.export.samples import write_samples


def add(job: ExportJob) -> list[str]:
    assert job.run is not None, "the onnx format exports a run"
    net = job.run.net.cpu().float().eval()
    job.specs = graph_specs(net)
    example_gen = torch.Generator().manual_seed(0)
    parity, files = {}, []
    for spec in job.specs:
        path = job.folder / spec.file
        export_graph(spec, path, job.opts["opset"], graph_input(net, spec, 2, example_gen))
        check_onnx(path)
        parity[spec.name] = check_parity(net, spec, path)
        files.append(spec.file)
        job.log(f"{spec.name:>10}: max |logit diff| vs PyTorch {parity[spec.name]['max_abs_logit_diff']:.2e} "
                f"at batch {', '.join(map(str, parity[spec.name]['batches']))}; same argmax: {parity[spec.name]['argmax_equal']}")
    job.manifest = _manifest(job.run, job.specs, job.opts, parity)
    for k in range(2, job.manifest.num_exits + 1):  # what the GPU chains run instead of the segments
        batches = check_row_gather(job.folder / job.manifest.graphs[names.segment(k)].file, job.manifest.segment_input_shape(k))
        job.log(f"{names.rows_segment(k):>14}: identical to {names.segment(k)} on the kept rows at {batches} batch sizes")
    data = job.data()
    if data is None:
        job.log("validation sample and examples not stored: the run's data is not available here")
    else:
        files += write_samples(job.folder, job.manifest, data, log=job.log)
    return files


def _manifest(run: TrainedRun, specs: list[GraphSpec], opts: dict[str, Any], parity: dict[str, Any]) -> Manifest:
    net, state, results = run.net, run.state, run.results
    meta = state["data_meta"]
    size = meta["image_size"]
    shapes = feature_shapes(net)
    val_top1 = results["best"]["val"]["top1"]
    exits = [{**info.to_dict(), "feature_shape": shapes[info.index - 1], "val_top1": val_top1[info.index - 1]}
             for info in net.exit_info]
    config = state.get("config", {})
    return Manifest.model_validate({
        "format": opts["format"],
        "edgekd_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "opset": opts["opset"],
        "source": {"run": results["name"], "method": config.get("method", {}).get("name"), "model": state["model_spec"],
                   "checkpoint": "best", "epoch": state.get("epoch")},
        "input": {"shape": (3, size, size)},
        # the weights' own, or for an edgekd backbone what it trained on (load_model)
        "preprocess": net.preprocess.spec(size),
        "classes": meta["classes"],
        "validation": {k: config.get("data", {}).get(k) for k in ("name", "val_size", "seed")},
        "exits": exits,
        "ensemble_val_top1": results["best"]["val"]["ensemble_top1"],
        "graphs": {s.name: {"file": s.file, "inputs": s.inputs, "outputs": s.outputs} for s in specs},
        "parity": parity,
    })
