"""INT8 graphs by onnxruntime static quantization (QDQ, per-channel int8 weights, per-tensor
activations), calibrated on training images.

Two schemes:
- `symmetric` (the default): int8 activations and weights, every zero point 0. This is the explicit
  quantization TensorRT reads (strongly typed networks take precision from the Q/DQ nodes), and
  onnxruntime runs it on CPU too.
- `u8s8`: uint8 activations with a zero point, int8 weights in 7 bits (`reduce_range`): onnxruntime's
  fast pairing on x86 CPUs. Without VNNI, onnxruntime sums pairs of u8 x s8 products in 16 bits, which
  saturate with full-range weights (255 x 127 x 2 > 32767); 7-bit weights keep them in range. TensorRT
  does not take this scheme.

Each graph is calibrated on the inputs it really sees: images for prefixes and `full`, and for
segment k the feature maps the FP32 segments before it produce from the same images. Nodes named
in `keep_fp32` stay in FP32 (see `int8.sensitive_nodes`).
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgekd.bundle import names
from edgekd.export.onnx_graphs import GraphSpec
from edgekd.export.parity import cpu_session

Scheme = Literal["symmetric", "u8s8"]
SCHEMES: dict[str, str] = {
    "symmetric": "static QDQ, symmetric int8 (zero points 0), per-channel weights, per-tensor activations",
    "u8s8": "static QDQ, uint8 activations with zero points, per-channel 7-bit int8 weights (U8S8, onnxruntime CPU only)",
}
PRECISION_OF_SCHEME = {"symmetric": "int8", "u8s8": "int8-u8s8"}


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
    inputs = {names.IMAGE: images}
    x = images
    for spec in specs:
        if names.is_segment(spec.name):
            feature, _ = cpu_session(folder / spec.file).run(spec.outputs, {spec.inputs[0]: x})
            inputs[spec.outputs[0]] = x = feature
    return inputs


def quantize_graphs(folder: Path, specs: list[GraphSpec], inputs: dict[str, np.ndarray], out_dir: Path, scheme: Scheme,
                    keep_fp32: dict[str, list[str]] | None = None) -> list[str]:
    """Write an INT8 copy of every graph into `out_dir`; return their paths relative to `folder`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    symmetric = scheme == "symmetric"
    with tempfile.TemporaryDirectory() as scratch:
        for spec in specs:
            prepared = Path(scratch) / spec.file
            quant_pre_process(str(folder / spec.file), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(out_dir / spec.file), ArrayReader(spec.inputs[0], inputs[spec.inputs[0]]),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=(keep_fp32 or {}).get(spec.name, []), reduce_range=not symmetric,
                            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
            drop_unused_opsets(out_dir / spec.file)
            written.append((out_dir / spec.file).relative_to(folder).as_posix())
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
