"""The `onnx-fp16` format, added to an `onnx` bundle: every graph with FP16 weights and activations and FP32 inputs
and outputs (onnxruntime's float16 converter, `keep_io_types`), so callers and the segment chain hand
over float32 as before; TensorRT's strongly typed networks take the precision from the graph.

Parity against FP32 is measured per exit on the validation split in onnxruntime on CPU (its CPU
kernels run FP16 where they have them and insert casts where they do not, so a GPU's figures can
differ slightly).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16
from onnxruntime.transformers.onnx_model import OnnxModel

from edgekd.bundle import Manifest
from edgekd.bundle.manifest import GraphSet
from edgekd.export.job import ExportJob
from edgekd.export.onnx_graphs import GraphSpec
from edgekd.export.precision_check import Reference, compare, log_comparison

PRECISION = "fp16"
METHOD = "FP16 weights and activations, FP32 inputs and outputs (onnxruntime float16 converter)"


def add(job: ExportJob) -> list[str]:
    assert job.manifest is not None
    return add_fp16(job.folder, job.manifest, job.specs, job.fp32_reference(required_by="FP16 parity"), job.log)


def add_fp16(folder: Path, manifest: Manifest, specs: list[GraphSpec], reference: Reference,
             log: Callable[[str], None]) -> list[str]:
    """Convert every graph into `folder/fp16`, measure it against FP32 on the validation split (`reference`),
    and enter the set in `manifest`."""
    out = folder / PRECISION
    out.mkdir()
    files = []
    for spec in specs:
        converted = OnnxModel(convert_float_to_float16(onnx.load(str(folder / spec.file)), keep_io_types=True))
        converted.topological_sort()  # the converter appends the input casts after the nodes that read them
        model = converted.model
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(out / spec.file))
        files.append(f"{PRECISION}/{spec.file}")
    result = compare(folder, PRECISION, reference)
    log(f"FP16: {len(files)} graphs ({METHOD})")
    log_comparison("FP16", reference.accuracy, result, log)
    manifest.precisions[PRECISION] = GraphSet(dir=PRECISION, files=files, method=METHOD, accuracy=result.accuracy,
                                              fp32_accuracy=reference.accuracy, agreement=result.agreement)
    return files
