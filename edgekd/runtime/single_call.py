"""The batch-1 early exit in one onnxruntime call.

At batch 1 a segment of a small model runs in a few hundred microseconds, and the early-exit loop
around the segments (a session call per segment, the exit's softmax and score in numpy, the
bookkeeping) cost about 34 us an exit on top (benchmarks/exit_overhead.py). `single_call_graph`
joins a bundle's segment graphs into one graph that does the whole walk itself:

    image, thresholds -> segment 1 -> score 1 -> If(score 1 >= threshold 1)
                                                   then: exit 1's answer
                                                   else: segment 2 -> score 2 -> If(...) ...

Each exit's probabilities (softmax of its logits over its temperature) and its score (`max_prob`,
`margin` or `entropy`, as `runtime.policies` defines them) are computed in the graph, so Python reads
one answer per call. The thresholds are an input: recalibrating needs no new graph. With the final
exit's ensemble (`runtime.trail`) the last level answers with the geometric ensemble of every exit's
log-probabilities: each level computes its own, and the final level reads them from the levels around
it. The early exits' options that look back along the chain (running ensemble, agreement, a learned
gate) stay on the segment chain.

Outputs: `probs` (1, C), the exit taken's probabilities; `scores` (1, K), every exit's score up to the
one taken and NaN after it; `exit`, the exit taken (1-based). The segments' own nodes and weights go
into the graph unchanged but for one rewrite at quantized boundaries: where a segment's feature map
leaves through DequantizeLinear and the next segment quantizes it again with the same scale and zero
point, the next segment reads the quantized tensor itself (`_quantized_handoff`). The integers are
the same, and a feature map no longer goes to float and back inside the graph, which onnxruntime
cannot fuse across an If. A graph that would not give the chain's answers is never used
(`single_call_disagrees`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekd.bundle import names

THRESHOLDS = "thresholds"
PROBS, SCORES, EXIT = "probs", "scores", "exit"
POLICIES = ("max_prob", "margin", "entropy")
MIN_OPSET = 13  # Softmax over one axis, GreaterOrEqual, Clip with tensor bounds


class NotJoinable(ValueError):
    """The segments cannot be joined into one graph (the reason says why); the chain serves instead."""


def _const(name: str, value: Any, dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


SAME_SCALE = 1e-4  # relative: requantizing (q - z) * s with s' within it gives back q for every 8-bit q


def _scalar_weight(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for weight in graph.initializer:
        if weight.name == name:
            value = numpy_helper.to_array(weight)
            return value if value.size == 1 else None
    return None


def _quantization(graph: onnx.GraphProto, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """A per-tensor (De)QuantizeLinear's scale and zero point, where both are weights of the graph."""
    if len(node.input) != 3 or any(a.name in ("saturate", "output_dtype", "block_size") for a in node.attribute):
        return None
    scale, zero = _scalar_weight(graph, node.input[1]), _scalar_weight(graph, node.input[2])
    return None if scale is None or zero is None else (scale, zero)


def _quantized_handoff(previous: onnx.GraphProto, feature: str, graph: onnx.GraphProto, source: str
                       ) -> tuple[str | None, set[int]]:
    """Where `previous` returns `feature` by DequantizeLinear and `graph` quantizes its input `source`
    again with the same scale and zero point: the quantized tensor's name in `previous` and the indices of
    `graph`'s QuantizeLinear nodes it replaces; (None, empty) where there is no such pair."""
    producer = next((n for n in previous.node if feature in n.output), None)
    if producer is None or producer.op_type != "DequantizeLinear" or producer.domain not in ("", "ai.onnx"):
        return None, set()
    leaving = _quantization(previous, producer)
    if leaving is None:
        return None, set()
    scale, zero = leaving
    requantized = set()
    for i, node in enumerate(graph.node):
        if node.op_type != "QuantizeLinear" or node.domain not in ("", "ai.onnx") or node.input[0] != source:
            continue
        entering = _quantization(graph, node)
        if entering is not None and entering[1].dtype == zero.dtype and np.array_equal(entering[1], zero) \
                and abs(float(entering[0]) / float(scale) - 1) < SAME_SCALE:
            requantized.add(i)
    return (producer.input[0], requantized) if requantized else (None, set())


def _renamed(graph: onnx.GraphProto, prefix: str, source: str, target: str,
             quantized: tuple[str, set[int]] | None = None) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The graph's nodes and weights with every name under `prefix`, its input `source` read as `target`;
    `quantized` (the previous segment's quantized feature map, as named in the joined graph, and the
    QuantizeLinear nodes that remake it): those nodes dropped, their outputs read from that tensor."""
    if graph.sparse_initializer or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                       for n in graph.node for a in n.attribute):
        raise NotJoinable(f"graph {graph.name!r} has sparse weights or nested graphs")
    tensor, dropped = quantized or ("", set())
    reused = {graph.node[i].output[0] for i in dropped}

    def rename(name: str) -> str:
        return name if name == "" else target if name == source else tensor if name in reused else prefix + name

    nodes, weights = [], []
    for i, node in enumerate(graph.node):
        if i in dropped:
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + (node.name or f"node_{i}")
        copy.input[:] = [rename(i) for i in node.input]
        copy.output[:] = [rename(o) for o in node.output]
        nodes.append(copy)
    for weight in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(weight)
        copy.name = rename(weight.name)
        weights.append(copy)
    return nodes, weights


def _scaled(logits: str, temperature: float, p: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    """(nodes, weights, name) of `logits` divided by `temperature` as `{p}scaled`; `logits` itself where it is 1."""
    if temperature == 1.0:
        return [], [], logits
    return [helper.make_node("Div", [logits, p + "T"], [p + "scaled"])], [_const(p + "T", temperature)], p + "scaled"


def _score_nodes(probs: str, policy: str, classes: int, p: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes computing `{p}score` (1,) from an exit's probabilities `probs` (1, C), as `runtime.policies` does."""
    node = helper.make_node
    nodes: list[onnx.NodeProto] = []
    weights = [_const(p + "vector", [1], np.int64)]
    if policy == "max_prob":
        nodes.append(node("TopK", [probs, p + "vector"], [p + "top", p + "top_index"], axis=1))
        top = p + "top"
    elif policy == "margin":
        weights += [_const(p + "two", [2], np.int64), _const(p + "zero", [0], np.int64), _const(p + "one", [1], np.int64)]
        nodes += [node("TopK", [probs, p + "two"], [p + "top2", p + "top2_index"], axis=1),
                  node("Slice", [p + "top2", p + "zero", p + "one", p + "one"], [p + "first"]),
                  node("Slice", [p + "top2", p + "one", p + "two", p + "one"], [p + "second"]),
                  node("Sub", [p + "first", p + "second"], [p + "top"])]
        top = p + "top"
    elif policy == "entropy":  # 1 - H(p) / log C with p clipped to [1e-12, 1], summed by a product with ones
        weights += [_const(p + "low", 1e-12), _const(p + "high", 1.0), _const(p + "ones", np.ones((classes, 1))),
                    _const(p + "log_classes", math.log(classes))]
        nodes += [node("Clip", [probs, p + "low", p + "high"], [p + "clipped"]),
                  node("Log", [p + "clipped"], [p + "log"]),
                  node("Mul", [p + "clipped", p + "log"], [p + "plogp"]),
                  node("MatMul", [p + "plogp", p + "ones"], [p + "negative_entropy"]),
                  node("Div", [p + "negative_entropy", p + "log_classes"], [p + "scaled_entropy"]),
                  node("Add", [p + "scaled_entropy", p + "high"], [p + "top"])]
        top = p + "top"
    else:
        raise NotJoinable(f"policy {policy!r} is not computed in the graph (only {', '.join(POLICIES)})")
    nodes.append(node("Reshape", [top, p + "vector"], [p + "score"]))
    return nodes, weights


def _log_probs(k: int) -> str:
    """Exit k's temperature-scaled log-probabilities, a term of the final exit's ensemble."""
    return f"L{k}/log_probs"


def _ensemble_nodes(count: int, p: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes writing `{p}logits`: the mean of every exit's temperature-scaled log-probabilities, whose softmax
    is the normalized geometric ensemble `runtime.trail` answers with at the final exit."""
    node = helper.make_node
    nodes = [node("Sum", [_log_probs(j) for j in range(1, count + 1)], [p + "sum"]),
             node("Div", [p + "sum", p + "count"], [p + "logits"])]
    return nodes, [_const(p + "count", float(count))]


def _outputs(p: str, classes: int, tail: int) -> list[onnx.ValueInfoProto]:
    return [helper.make_tensor_value_info(p + PROBS, TensorProto.FLOAT, [1, classes]),
            helper.make_tensor_value_info(p + SCORES, TensorProto.FLOAT, [tail]),
            helper.make_tensor_value_info(p + EXIT, TensorProto.INT64, [])]


def _segment_prefix(k: int) -> str:
    return f"L{k}/segment/"


def _level(segments: Sequence[onnx.ModelProto], k: int, policy: str, temperatures: Sequence[float], classes: int,
           final_ensemble: bool = False) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes from segment k (1-based) on, writing `L{k}/probs`, `L{k}/scores` (exits k..K) and `L{k}/exit`.
    Level k's names start with `L{k}/`: the segment's own under `L{k}/segment/`, its score's under `L{k}/score/`
    (the final exit's ensemble under `L{K}/ensemble/`)."""
    count, p = len(segments), f"L{k}/"
    target = names.IMAGE if k == 1 else _segment_prefix(k - 1) + names.feature(k - 1)
    graph, quantized = segments[k - 1].graph, None
    if k > 1:
        tensor, dropped = _quantized_handoff(segments[k - 2].graph, names.feature(k - 1), graph, names.segment_input(k))
        quantized = (_segment_prefix(k - 1) + tensor, dropped) if tensor else None
    nodes, weights = _renamed(graph, _segment_prefix(k), names.segment_input(k), target, quantized)
    scale_nodes, scale_weights, scaled = _scaled(_segment_prefix(k) + names.logits(k), temperatures[k - 1], p + "scale/")
    nodes, weights = nodes + scale_nodes, weights + scale_weights
    node, probs, score = helper.make_node, p + "score/probs", p + "score/score"
    if not final_ensemble:
        nodes.append(node("Softmax", [scaled], [probs], axis=1))
    else:
        # Every level computes its own term of the ensemble, and its probabilities from it, as `runtime.trail`
        # does: an exit's logits then have one reader. Where a quantized exit's logits had two (the If branch
        # holding the ensemble among them), onnxruntime would not fuse that exit's head into its quantized
        # kernel, and the exit's logits would round differently from the chain's.
        nodes.append(node("LogSoftmax", [scaled], [_log_probs(k)], axis=1))
        if k < count:
            nodes.append(node("Exp", [_log_probs(k)], [probs]))
        else:
            more_nodes, more_weights = _ensemble_nodes(count, p + "ensemble/")
            nodes, weights = nodes + more_nodes + [node("Softmax", [p + "ensemble/logits"], [probs], axis=1)], \
                weights + more_weights
    more_nodes, more_weights = _score_nodes(probs, policy, classes, p + "score/")
    nodes, weights = nodes + more_nodes, weights + more_weights
    if k == count:
        nodes += [node("Identity", [probs], [p + PROBS]), node("Identity", [score], [p + SCORES]),
                  node("Constant", [], [p + EXIT], value=_const(p + "k", k, np.int64))]
        return nodes, weights
    weights += [_const(p + "k_start", [k - 1], np.int64), _const(p + "k_end", [k], np.int64), _const(p + "scalar", [], np.int64)]
    nodes += [node("Slice", [THRESHOLDS, p + "k_start", p + "k_end"], [p + "threshold"]),
              node("GreaterOrEqual", [score, p + "threshold"], [p + "leaves"]),
              node("Reshape", [p + "leaves", p + "scalar"], [p + "leaves_now"])]
    then = p + "leave/"
    leave = helper.make_graph(
        [node("Identity", [probs], [then + PROBS]),
         node("Constant", [], [then + SCORES], value=_const(then + "nan", [math.nan] * (count - k))),
         node("Constant", [], [then + EXIT], value=_const(then + "k", k, np.int64))],
        then.rstrip("/"), [], _outputs(then, classes, count - k))
    deeper_nodes, deeper_weights = _level(segments, k + 1, policy, temperatures, classes, final_ensemble)
    go_on = helper.make_graph(deeper_nodes, f"L{k + 1}", [], _outputs(f"L{k + 1}/", classes, count - k),
                              initializer=deeper_weights)
    nodes += [node("If", [p + "leaves_now"], [p + PROBS, p + "tail", p + EXIT], then_branch=leave, else_branch=go_on),
              node("Concat", [score, p + "tail"], [p + SCORES], axis=0)]
    return nodes, weights


def _opsets(segments: Sequence[onnx.ModelProto]) -> list[onnx.OperatorSetIdProto]:
    versions: dict[str, int] = {}
    for model in segments:
        for opset in model.opset_import:
            versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    if versions.get("", 0) < MIN_OPSET:
        raise NotJoinable(f"the segments' opset {versions.get('', 0)} is below {MIN_OPSET}")
    return [helper.make_opsetid(domain, version) for domain, version in versions.items()]


def single_call_graph(segments: Sequence[onnx.ModelProto], policy: str, temperatures: Sequence[float],
                      image_shape: Sequence[int], classes: int, final_ensemble: bool = False) -> onnx.ModelProto:
    """The segments (segment_1 first) joined into one batch-1 early-exit graph (see the module's docstring);
    `final_ensemble`: the final exit answers with the ensemble of every exit."""
    if policy not in POLICIES:
        raise NotJoinable(f"policy {policy!r} is not computed in the graph (only {', '.join(POLICIES)})")
    image = segments[0].graph.input[0]
    if image.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise NotJoinable("the first segment does not take float32 images")
    count = len(segments)
    nodes, weights = _level(segments, 1, policy, temperatures, classes, final_ensemble)
    weights.append(_const("batch_of_one", [1, count], np.int64))
    nodes += [helper.make_node("Identity", ["L1/" + PROBS], [PROBS]),
              helper.make_node("Reshape", ["L1/" + SCORES, "batch_of_one"], [SCORES]),
              helper.make_node("Identity", ["L1/" + EXIT], [EXIT])]
    graph = helper.make_graph(
        nodes, "early_exit",
        [helper.make_tensor_value_info(names.IMAGE, TensorProto.FLOAT, [1, *image_shape]),
         helper.make_tensor_value_info(THRESHOLDS, TensorProto.FLOAT, [max(count - 1, 0)])],
        [helper.make_tensor_value_info(PROBS, TensorProto.FLOAT, [1, classes]),
         helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, [1, count]),
         helper.make_tensor_value_info(EXIT, TensorProto.INT64, [])],
        initializer=weights)
    return helper.make_model(graph, opset_imports=_opsets(segments), ir_version=max(m.ir_version for m in segments))


class SingleCall:
    """A session of the joined graph: `run(image, thresholds)` -> (probs (1, C), scores (1, K), exit)."""

    def __init__(self, session: Any, num_exits: int) -> None:
        self.session, self.num_exits = session, num_exits

    def run(self, image: np.ndarray, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray, int]:
        feeds = {names.IMAGE: image, THRESHOLDS: np.asarray(thresholds[:self.num_exits - 1], np.float32)}
        probs, scores, exit = self.session.run(None, feeds)
        return probs, scores, int(exit)


PROBE_TOLERANCE = 1e-5  # probabilities: the same kernels give the same sums up to rounding


def single_call_disagrees(call: SingleCall, chain: Any, policy: Any, temperatures: Sequence[float],
                          image_shape: Sequence[int], final_ensemble: bool = False) -> str | None:
    """Where the joined graph's answers differ from the chain's on a seeded random image, made to leave at
    every exit in turn (thresholds below every score up to there, above them before it); None where they agree."""
    from edgekd.runtime.trail import ExitTrail

    image = np.random.default_rng(0).standard_normal((1, *image_shape)).astype(np.float32)
    count = call.num_exits
    trail = ExitTrail(policy, temperatures, final_ensemble=final_ensemble)
    expected = [trail.step(z, k)[0] for k, z in enumerate(chain.run_through(image, count))]
    for k in range(1, count + 1):
        thresholds = [2.0] * (k - 1) + [-1.0] * (count - k)
        probs, scores, exit = call.run(image, thresholds)
        if exit != k:
            return f"it left at exit {exit} where the thresholds send every image to exit {k}"
        if not np.allclose(probs, expected[k - 1], rtol=0, atol=PROBE_TOLERANCE):
            return f"exit {k}'s probabilities differ from the chain's (max abs diff {float(np.abs(probs - expected[k - 1]).max()):.3g})"
        want = np.array([policy(p)[0] for p in expected[:k]])
        if not (np.allclose(scores[0, :k], want, rtol=0, atol=PROBE_TOLERANCE) and np.isnan(scores[0, k:]).all()):
            return f"its scores {scores[0].tolist()} are not the chain's {want.tolist()} followed by NaN"
    return None
