"""INT8 graphs: onnxruntime static quantization (QDQ; uint8 activations, per-channel int8 weights, the
fast pairing on CPUs), calibrated on training images.

Each graph is calibrated on the inputs it really sees: images for prefixes and `full`, and for
segment k the feature maps the FP32 segments before it produce from the same images.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgekd.export.onnx_graphs import GraphSpec
from edgekd.export.parity import cpu_session


class ArrayReader(CalibrationDataReader):
    """Feeds `arrays` to the calibrator in batches of `batch`."""

    def __init__(self, input_name: str, arrays: np.ndarray, batch: int = 32) -> None:
        self.input_name, self.arrays, self.batch = input_name, arrays, batch
        self.reset()

    def reset(self) -> None:
        self._iter: Iterator[np.ndarray] = iter(np.array_split(self.arrays, max(1, len(self.arrays) // self.batch)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._iter, None)
        return None if chunk is None else {self.input_name: chunk}


def calibration_inputs(folder: Path, specs: list[GraphSpec], images: np.ndarray) -> dict[str, np.ndarray]:
    """Input name -> calibration arrays: the images, and each feature map from the FP32 segment chain."""
    inputs = {"image": images}
    x = images
    for spec in specs:
        if spec.name.startswith("segment_"):
            feature, _ = cpu_session(folder / spec.file).run(spec.outputs, {spec.inputs[0]: x})
            inputs[spec.outputs[0]] = x = feature
    return inputs


def quantize_graphs(folder: Path, specs: list[GraphSpec], images: np.ndarray, out_dir: Path) -> list[str]:
    """Write an INT8 copy of every graph into `out_dir`; return their paths relative to `folder`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = calibration_inputs(folder, specs, images)
    written = []
    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        for spec in specs:
            prepared = Path(scratch) / spec.file
            quant_pre_process(str(folder / spec.file), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(out_dir / spec.file), ArrayReader(spec.inputs[0], inputs[spec.inputs[0]]),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
            drop_unused_opsets(out_dir / spec.file)
            written.append(str((out_dir / spec.file).relative_to(folder)))
    return written


def drop_unused_opsets(path: Path) -> None:
    """Remove the opset imports of domains no node uses. The quantizer stamps `ai.onnx.ml` (opset 5 with
    onnx 1.18+) on graphs without a single ai.onnx.ml node, and onnxruntime releases older than that
    opset refuse to load such a graph, though they run every node in it."""
    model = onnx.load(str(path))
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    if len(kept) < len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(kept)
        onnx.save(model, str(path))
