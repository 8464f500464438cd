"""The `onnx-int8` format, added to an `onnx` bundle: calibration images from the run's training split, the
quantized graphs, and per-exit accuracy of INT8 against FP32 on the validation split.

With `max_drop`, an exit that loses more than that many points gets its most sensitive nodes kept in
FP32, in steps (`SENSITIVE_STEPS`: the exit heads, then the stem, then depthwise convolutions), and is
checked again; a bundle that still fails is refused, naming the exit.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch

from edgekd.bundle import Manifest, names
from edgekd.bundle.manifest import GraphSet
from edgekd.errors import EdgekdError
from edgekd.export.job import ExportJob
from edgekd.export.onnx_graphs import GraphSpec
from edgekd.export.precision_check import Comparison, Reference, compare, log_comparison
from edgekd.export.quantize import PRECISION_OF_SCHEME, SCHEMES, Scheme, calibration_inputs, quantize_graphs
from edgekd.export.samples import write_calibration_sample

SENSITIVE_STEPS = ("exit heads", "stem", "depthwise convolutions")


def _is_head(node: onnx.NodeProto) -> bool:
    return "head" in node.name  # the exporter's module paths: /head/... in a segment, /net/heads.k/... in full


def _is_stem(node: onnx.NodeProto) -> bool:
    return node.op_type == "Conv" and node.input[0] == names.IMAGE


def _is_depthwise(node: onnx.NodeProto) -> bool:
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    return node.op_type == "Conv" and group > 1


RULES = (_is_head, _is_stem, _is_depthwise)  # in the order of SENSITIVE_STEPS


def sensitive_nodes(path: Path, steps: int) -> list[str]:
    """The names of the nodes of the graph at `path` that the first `steps` of `SENSITIVE_STEPS` keep in FP32."""
    return [n.name for n in onnx.load(str(path)).graph.node if any(rule(n) for rule in RULES[:steps])]


def _calibration_images(data: Any, count: int) -> np.ndarray:
    from edgekd.data.splits import TransformedSubset
    from edgekd.data.transforms import eval_transform

    calib = TransformedSubset(data.train.base, data.train.indices, eval_transform(data.image_size, data.preprocess))
    order = np.random.default_rng(0).permutation(len(calib))[:count].tolist()
    return torch.stack([calib[i][0] for i in order]).numpy()


def add(job: ExportJob) -> list[str]:
    assert job.manifest is not None
    data = job.data(required_by="INT8 calibration")
    return add_int8(job.folder, job.manifest, job.specs, data, job.fp32_reference(required_by="INT8 calibration"),
                    job.opts["calib_images"], job.opts["int8_scheme"], job.opts.get("max_int8_drop"), job.log)


def add_int8(folder: Path, manifest: Manifest, specs: list[GraphSpec], data: Any, reference: Reference, calib_images: int,
             scheme: Scheme, max_drop: float | None, log: Callable[[str], None]) -> list[str]:
    """Quantize every graph into `folder/<precision>`, calibrated on the training images of `data` (the run's
    DataSplits), measure INT8 vs FP32 on the validation split (`reference`), and enter the set in `manifest`."""
    precision = PRECISION_OF_SCHEME[scheme]
    images = _calibration_images(data, calib_images)
    log(f"INT8 ({scheme}): calibrating {len(images)} training images per graph ({SCHEMES[scheme]})")
    inputs = calibration_inputs(folder, specs, images)
    fp32 = reference.accuracy
    for steps in range(len(SENSITIVE_STEPS) + 1):
        keep = {s.name: sensitive_nodes(folder / s.file, steps) for s in specs} if steps else {}
        files = quantize_graphs(folder, specs, inputs, folder / precision, scheme, keep)
        result = compare(folder, precision, reference, simulate=True)
        if steps:
            log(f"  kept in FP32: {', '.join(SENSITIVE_STEPS[:steps])} ({len(keep[names.FULL])} nodes of the full graph)")
        log_comparison("INT8", fp32, result, log)
        # Each scheme is held to the bound as its target runs it: symmetric graphs as written (TensorRT's INT8
        # arithmetic), U8S8 graphs as onnxruntime's CPU kernels compute them.
        judged = result.simulated if scheme == "symmetric" else result.accuracy
        failing = [k for k, (a, b) in enumerate(zip(fp32.top1, judged.top1), start=1) if max_drop is not None and a - b > max_drop]
        if not failing:
            break
        several = len(failing) > 1
        log(f"  exit{'s' if several else ''} {', '.join(map(str, failing))} lose{'' if several else 's'} more than {max_drop} points")
    else:
        worst = max(failing, key=lambda k: fp32.top1[k - 1] - judged.top1[k - 1])
        raise EdgekdError(f"INT8 exit {worst} loses {fp32.top1[worst - 1] - judged.top1[worst - 1]:.2f} points of validation top-1 "
                          f"(more than --max-int8-drop {max_drop}) even with the {', '.join(SENSITIVE_STEPS)} kept in FP32; "
                          f"export with --format onnx or --format onnx-fp16, or raise --max-int8-drop")
    _warn_about_cpu_kernels(result, scheme, log)
    files.append(write_calibration_sample(folder, manifest, images))
    manifest.precisions[precision] = GraphSet(
        dir=precision, files=[f for f in files if f.endswith(names.GRAPH_SUFFIX)], method=SCHEMES[scheme],
        accuracy=result.accuracy, simulated_accuracy=result.simulated, fp32_accuracy=fp32, agreement=result.agreement,
        calibration_images=len(images), fp32_nodes={name: nodes for name, nodes in keep.items() if nodes})
    return files


CPU_KERNEL_GAP = 2.0  # points


def _warn_about_cpu_kernels(result: Comparison, scheme: Scheme, log: Callable[[str], None]) -> None:
    """Say so where onnxruntime's integer kernels on this CPU lose clearly more than the graph's own arithmetic."""
    gap = max(s - a for s, a in zip(result.simulated.top1, result.accuracy.top1))
    if gap <= CPU_KERNEL_GAP:
        return
    why = f"note: onnxruntime's INT8 kernels on this CPU score up to {gap:.1f} points below the graph's own arithmetic"
    if scheme == "symmetric":
        log(f"  {why} (on an x86 CPU without VNNI its 16-bit sums of int8 products saturate); the graphs are what TensorRT "
            f"reads. For onnxruntime on this CPU export with --int8-scheme u8s8")
    else:
        log(f"  {why}; check this bundle's INT8 accuracy on the device before deploying it")
