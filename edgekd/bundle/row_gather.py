"""Row-gathering segments: a segment graph that first keeps the rows a second input names.

An early-exit chain drops the samples that left at an exit before the next segment runs. On a GPU
that compaction belongs on the device, so the feature map never comes back to the host: segment k
(k >= 2) gets a second input, `rows` (int64, the indices of the samples still running), and a
`Gather` along the batch axis in front of its first node. Everything after the gather is the segment
as exported, at whatever precision its graph set has (FP32, FP16 with FP32 inputs, Q/DQ INT8), so the
gathering graph computes exactly what the segment computes on `feature[rows]`.

The graphs are derived from the bundle's verified segment files when a backend needs them (in memory,
no copy of the weights on disk); the `onnx` export checks them against the segments on CPU.
"""
from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from edgekd.bundle import names

KEPT = "kept"  # the symbolic batch size after the gather


def with_row_gather(segment: Path | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """The segment graph `segment` (a path, serialized bytes or a model) with `rows` as a second input
    and a Gather of its first input by `rows` ahead of everything else."""
    if isinstance(segment, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(segment)
    else:
        model = onnx.load_from_string(segment) if isinstance(segment, bytes) else onnx.load(str(segment))
    graph = model.graph
    if len(graph.input) != 1 or any(i.name == names.ROWS for i in graph.input):
        raise ValueError(f"a row-gathering graph is made from a segment with one input; this graph has "
                         f"{', '.join(i.name for i in graph.input)}")
    source = graph.input[0].name
    kept = f"{source}_{KEPT}"
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == source:
                node.input[i] = kept
    graph.node.insert(0, helper.make_node("Gather", [source, names.ROWS], [kept], axis=0, name="gather_kept_rows"))
    graph.input.append(helper.make_tensor_value_info(names.ROWS, TensorProto.INT64, [KEPT]))
    for output in graph.output:  # the outputs have as many rows as `rows` has entries, not the input's batch
        output.type.tensor_type.shape.dim[0].dim_param = KEPT
    del graph.value_info[:]  # intermediate shapes carry the input's batch; onnxruntime infers them again
    return model
