"""Feature maps handed between CPU segments in onnxruntime's blocked (NCHWc) layout, not converted twice.

On x86 CPUs onnxruntime runs convolutions on channel-blocked tensors (its NCHWc transformer) and
converts at a graph's edges: a segment's feature map leaves through a ReorderOutput (blocked ->
NCHW) and enters the next segment through a ReorderInput (NCHW -> blocked). The monolithic graph
makes neither copy, so at batch 1 they are a good part of what chaining costs.

`blocked_handoff(paths)` optimizes every segment as onnxruntime would for this CPU and, at each
boundary where one segment ends with ReorderOutput and the next starts with ReorderInput, removes
both, so the blocked tensor passes through unchanged (same kernels, same numbers). The graphs are
optimized on the machine that runs them, at load time, and never saved: the blocked layout depends
on the CPU. A feature map between two such segments is then in onnxruntime's internal layout (its
channel count rounded up to the block size): feed a segment only what the previous one returned.
Where nothing can be removed (ARM CPUs, quantized graphs, channel counts the transformer leaves
alone) the exported graphs are used as they are.

A ResNet stage ends in a convolution that adds its residual in place, into the residual's buffer.
onnxruntime cannot do that into a graph output, so it first copies the residual there, on one thread:
at batch 1 a few kilobytes, at batch 64 megabytes, which one core copies while the other waits and
which the next kernels then read from the wrong core's cache. `parallel_copy=True` builds the variant
for large feature maps: such a convolution keeps its in-place sum, and where it ends in ReLU its result is
handed on by a second ReLU, an exact copy (the values are already >= 0) that onnxruntime spreads over
every thread; a boundary without that ReLU keeps its two conversions.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Sequence

import onnx
import onnxruntime as ort

NCHWC = "com.microsoft.nchwc"
MAX_BLOCK = 16  # channels per block of onnxruntime's NCHWc kernels: 8 (AVX2) or 16 (AVX-512)


def blocked_handoff(paths: Sequence[Path], options: Callable[[], ort.SessionOptions], *,
                    parallel_copy: bool = False) -> list[bytes] | None:
    """The segments at `paths` (segment_1 first) optimized for this CPU with every convertible boundary
    kept blocked, serialized for `InferenceSession` (load them with optimizations off: they are done);
    None where no boundary could be. `options` makes the optimizing sessions' options (threads);
    `parallel_copy`: the variant for large feature maps, whose in-place sums are handed on by a copy on
    every thread."""
    with tempfile.TemporaryDirectory() as tmp:
        models = [_optimized(path, Path(tmp) / f"{k}.onnx", options()) for k, path in enumerate(paths)]
    blocked = 0
    for ending, starting in zip(models, models[1:]):
        feature, first = ending.graph.output[0].name, starting.graph.input[0].name
        end, start = _reorder_output(ending.graph, feature), _reorder_input(starting.graph, first)
        if end is None or start is None:
            continue
        producer = _producer(ending.graph, end.input[0])
        copy = parallel_copy and producer is not None and _sums_in_place(producer)
        if copy and not _ends_in_relu(producer):
            continue  # one thread copying megabytes costs more than the two conversions
        _drop(ending.graph, end, old=end.input[0], new=feature)
        _drop(starting.graph, start, old=start.output[0], new=first)
        if copy:
            _hand_on_by_relu(ending.graph, feature)
        blocked += 1
    return [m.SerializeToString() for m in models] if blocked else None


def _optimized(path: Path, out: Path, options: ort.SessionOptions) -> onnx.ModelProto:
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3  # the warning that the result suits this CPU only: that is the point
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(out))


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _reorder_output(graph: onnx.GraphProto, name: str) -> onnx.NodeProto | None:
    """The ReorderOutput (blocked -> NCHW) that produces graph output `name`, if that is what produces it."""
    node = _producer(graph, name)
    if node is None or node.domain != NCHWC or node.op_type != "ReorderOutput" or _attribute(node, "channels_last", 0):
        return None
    return node


def _reorder_input(graph: onnx.GraphProto, name: str) -> onnx.NodeProto | None:
    """The ReorderInput (NCHW -> blocked) that is graph input `name`'s only consumer, if there is one."""
    consumers = [n for n in graph.node if name in n.input]
    if len(consumers) != 1:
        return None
    node = consumers[0]
    if node.domain != NCHWC or node.op_type != "ReorderInput" or _attribute(node, "channels_last", 0):
        return None
    return node


def _producer(graph: onnx.GraphProto, name: str) -> onnx.NodeProto | None:
    return next((n for n in graph.node if name in n.output), None)


def _sums_in_place(node: onnx.NodeProto) -> bool:
    """Whether `node` is a blocked convolution that adds a residual (its fourth input) in place."""
    return node.domain == NCHWC and node.op_type == "Conv" and len(node.input) > 3 and bool(node.input[3])


def _ends_in_relu(node: onnx.NodeProto) -> bool:
    return any(a.name == "activation" and a.s == b"Relu" for a in node.attribute)


def _hand_on_by_relu(graph: onnx.GraphProto, feature: str) -> None:
    """Let graph output `feature` be a ReLU of what its producer computes (under a new name, in place):
    the same values, copied by every thread instead of one."""
    computed = f"{feature}/in_place"
    _rename(graph, old=feature, new=computed)
    graph.node.append(onnx.helper.make_node("Relu", [computed], [feature], name=f"{feature}/hand_on"))


def _rename(graph: onnx.GraphProto, *, old: str, new: str) -> None:
    """Call tensor `old` `new` wherever a node reads or writes it."""
    for node in graph.node:
        for names in (node.input, node.output):
            for i, value in enumerate(names):
                if value == old:
                    names[i] = new


def _drop(graph: onnx.GraphProto, node: onnx.NodeProto, *, old: str, new: str) -> None:
    """Remove `node` and call tensor `old` `new` (the graph input or output it stood between). The
    boundary keeps its declared shape where its channels fill whole blocks, so onnxruntime still plans
    in-place sums and memory from it; otherwise the blocked tensor has padded channels and the shape goes."""
    graph.node.remove(node)
    _rename(graph, old=old, new=new)
    for value in list(graph.value_info):
        if value.name in (old, new):
            graph.value_info.remove(value)
    for boundary in (*graph.input, *graph.output):
        if boundary.name == new and not _whole_blocks(boundary):
            boundary.type.tensor_type.ClearField("shape")


def _whole_blocks(value: onnx.ValueInfoProto) -> bool:
    """Whether an NCHW tensor's channel count is a multiple of every block size onnxruntime uses, so
    that its blocked form has the same shape."""
    dims = value.type.tensor_type.shape.dim
    return len(dims) > 1 and dims[1].dim_value > 0 and dims[1].dim_value % MAX_BLOCK == 0


def reorders(model: bytes | Path) -> int:
    """How many NCHW <-> blocked conversions a graph makes (the tests count them)."""
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    return sum(n.domain == NCHWC and n.op_type in ("ReorderInput", "ReorderOutput") for n in proto.graph.node)
