"""A single image's early exit in one onnxruntime call: the joined graph answers as the segment chain does."""
import logging
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import ROOT, SHAPES_IMAGES, TINY_BUNDLE
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.backends import onnxruntime_cpu
from edgekd.runtime.evaluation import load_split
from edgekd.runtime.single_call import NotJoinable, single_call_graph

pytestmark = pytest.mark.usefixtures("runtime_fixture")
TEMPERATURES = [1.7, 0.8, 2.5, 1.3]
THRESHOLD_CHOICES = [0.2, 0.5, 0.8, 0.95, 0.99, 2.0]  # 2.0: nobody leaves there


@pytest.fixture(scope="module")
def test_images():
    return load_split(EarlyExitModel(TINY_BUNDLE), SHAPES_IMAGES, "test")[0]


def _pair(precision: str) -> tuple[EarlyExitModel, EarlyExitModel]:
    joined, chained = (EarlyExitModel(TINY_BUNDLE, precision=precision, single_call=flag) for flag in (True, False))
    joined.temperatures = chained.temperatures = TEMPERATURES
    return joined, chained


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("policy", ["max_prob", "margin", "entropy"])
def test_one_call_answers_as_the_segment_chain_does(test_images, precision, policy):
    joined, chained = _pair(precision)
    rng = np.random.default_rng(0)
    exits = []
    for image in test_images:
        thresholds = list(rng.choice(THRESHOLD_CHOICES, 3))
        one = joined.predict(image[None], mode="early", thresholds=thresholds, policy=policy)
        walk = chained.predict(image[None], mode="early", thresholds=thresholds, policy=policy)
        assert list(one.timings) == ["single_call", "total"] and "segment_1" in walk.timings
        assert (one.exits[0], one.labels[0], one.class_names) == (walk.exits[0], walk.labels[0], walk.class_names)
        np.testing.assert_allclose(one.probs, walk.probs, rtol=0, atol=1e-5)
        np.testing.assert_allclose(one.confidences, walk.confidences, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(np.isnan(one.exit_scores), np.isnan(walk.exit_scores))
        np.testing.assert_allclose(np.nan_to_num(one.exit_scores), np.nan_to_num(walk.exit_scores), rtol=0, atol=1e-5)
        assert one.host_copies.total == 0
        exits.append(int(one.exits[0]))
    assert len(set(exits)) >= 3, f"the thresholds sent the images to too few exits: {sorted(set(exits))}"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_one_call_answers_with_the_final_exits_ensemble_as_the_chain_does(test_images, precision):
    joined, chained = _pair(precision)
    joined.final_ensemble = chained.final_ensemble = True
    alone = EarlyExitModel(TINY_BUNDLE, precision=precision)
    alone.temperatures = TEMPERATURES
    rng = np.random.default_rng(1)
    moved = 0.0
    for image in test_images[:40]:
        thresholds = list(rng.choice(THRESHOLD_CHOICES, 3))
        one = joined.predict(image[None], mode="early", thresholds=thresholds, policy="margin")
        walk = chained.predict(image[None], mode="early", thresholds=thresholds, policy="margin")
        assert list(one.timings) == ["single_call", "total"] and "segment_1" in walk.timings
        assert (one.exits[0], one.labels[0]) == (walk.exits[0], walk.labels[0])
        np.testing.assert_allclose(one.probs, walk.probs, rtol=0, atol=1e-5)
        np.testing.assert_allclose(one.confidences, walk.confidences, rtol=0, atol=1e-5)
        if one.exits[0] == 4:
            final_alone = alone.predict(image[None], mode="exit", exit=4, policy="margin")
            moved = max(moved, float(np.abs(one.probs - final_alone.probs).max()))
    assert moved > 0.01, "the final exit's ensemble answered as the final exit alone does"


def test_calibrated_thresholds_and_a_batch_take_their_own_paths(test_images):
    joined, _ = _pair("fp32")
    joined.thresholds = [0.9, 0.8, 0.7]
    alone = joined.predict(test_images[:1])  # auto: early exit with the model's own thresholds
    assert list(alone.timings) == ["single_call", "total"]
    batch = joined.predict(test_images[:5], mode="early")
    assert "segment_1" in batch.timings  # batches compact through the chain
    assert batch.exits[0] == alone.exits[0] and batch.labels[0] == alone.labels[0]


@pytest.mark.parametrize("option", ["running_ensemble", "agreement", "gate"])
def test_options_that_look_back_run_the_chain(test_images, option):
    model = EarlyExitModel(TINY_BUNDLE)
    setattr(model, option, [np.ones(7)] * 3 if option == "gate" else True)
    result = model.predict(test_images[:1], mode="early", thresholds=[0.5] * 3)
    assert model.single_call_for() is None and "segment_1" in result.timings


def test_a_joined_graph_that_disagrees_is_never_used(test_images, monkeypatch, caplog):
    monkeypatch.setattr(onnxruntime_cpu, "single_call_disagrees", lambda *args: "exit 2's probabilities differ")
    model = EarlyExitModel(TINY_BUNDLE)
    with caplog.at_level(logging.DEBUG, logger="edgekd.runtime"):
        result = model.predict(test_images[:1], mode="early", thresholds=[0.5] * 3)
    assert "segment_1" in result.timings
    assert "runs the segment chain, not one call: exit 2's probabilities differ" in caplog.text


def _segment(opset: int) -> onnx.ModelProto:
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 4])  # noqa: E731
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["feature_1"]),
                               helper.make_node("Identity", ["feature_1"], ["logits_1"])],
                              "segment_1", [value("image")], [value("feature_1"), value("logits_1")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_what_cannot_be_joined_is_refused_with_the_reason():
    with pytest.raises(NotJoinable, match="policy 'gate' is not computed in the graph"):
        single_call_graph([_segment(17)], "gate", [1.0], [4], 4)
    with pytest.raises(NotJoinable, match="opset 11 is below 13"):
        single_call_graph([_segment(11)], "margin", [1.0], [4], 4)
    joined = single_call_graph([_segment(17)], "margin", [1.0], [4], 4)  # one exit: the graph just answers
    onnx.checker.check_model(joined)
    assert [o.name for o in joined.graph.output] == ["probs", "scores", "exit"]


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attribute.g)


def _requantized_boundaries(segments) -> list[int]:
    joined = single_call_graph(segments, "margin", [1.0] * 4, [3, 32, 32], 7)
    return [k for k in range(1, 4) for node in _nodes(joined.graph)
            if node.op_type == "QuantizeLinear" and node.input[0] == f"L{k}/segment/feature_{k}"]


def test_quantized_feature_maps_pass_between_exits_without_going_to_float_and_back():
    segments = [onnx.load(str(TINY_BUNDLE / "int8" / f"segment_{k}.onnx")) for k in range(1, 5)]
    assert _requantized_boundaries(segments) == []  # each segment reads the previous one's int8 tensor
    entering = next(n for n in segments[1].graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "feature_1")
    scale = next(w for w in segments[1].graph.initializer if w.name == entering.input[1])
    scale.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(scale) * np.float32(1.01), scale.name))
    assert _requantized_boundaries(segments) == [1]  # another scale would give other integers: kept as it is


@pytest.mark.parametrize("temperatures", [TEMPERATURES, [1.0] * 4], ids=["scaled", "unscaled"])
def test_every_int8_exit_answers_as_the_chain_does_with_the_final_exits_ensemble(test_images, temperatures):
    joined, chained = (EarlyExitModel(TINY_BUNDLE, precision="int8", single_call=flag) for flag in (True, False))
    for model in (joined, chained):
        model.temperatures, model.final_ensemble = temperatures, True
    worst = 0.0
    for k in range(1, 5):  # thresholds that send every image to exit k
        thresholds = [2.0] * (k - 1) + [-1.0] * (4 - k)
        for image in test_images:
            one = joined.predict(image[None], mode="early", thresholds=thresholds, policy="margin")
            walk = chained.predict(image[None], mode="early", thresholds=thresholds, policy="margin")
            assert list(one.timings) == ["single_call", "total"] and one.exits[0] == walk.exits[0] == k
            worst = max(worst, float(np.abs(one.probs - walk.probs).max()))
    assert worst < 1e-5, f"an exit's probabilities differ from the chain's by {worst:.3g}"


def test_each_exits_logits_have_one_reader_in_the_joined_graph():
    """An exit's logits read twice (by its score and by the ensemble in a branch) keep onnxruntime from
    fusing a quantized head into one kernel, so that exit would round otherwise than the chain's."""
    segments = [onnx.load(str(TINY_BUNDLE / "int8" / f"segment_{k}.onnx")) for k in range(1, 5)]
    for temperatures in (TEMPERATURES, [1.0] * 4):
        joined = single_call_graph(segments, "margin", temperatures, [3, 32, 32], 7, final_ensemble=True)
        readers = {k: sum(f"L{k}/segment/logits_{k}" in node.input for node in _nodes(joined.graph)) for k in range(1, 5)}
        assert readers == {1: 1, 2: 1, 3: 1, 4: 1}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_overhead_benchmark_times_one_call_with_the_final_exits_ensemble(precision):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "exit_overhead.py"), str(TINY_BUNDLE), "--precision", precision,
                           "--final-ensemble", "--repeats", "3", "--rounds", "2"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr  # it stops where the segments could not be joined
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"tiny_bundle ({precision}, final exit: the ensemble): batch 1, 4 exits")
    rows = [line.split(" | ") for line in lines[2:]]
    assert [r[0] for r in rows] == ["1", "2", "median"] and all(len(r) == 11 for r in rows)
    assert all(float(r[4].removesuffix(" us")) > 0 and r[9].endswith("x") for r in rows)
