"""Blocked hand-off between CPU segments (edgekd.runtime.layout) on the tiny test bundle, in both
variants (small feature maps: onnxruntime's own one-thread copy; large: a parallel ReLU copy): the same
numbers as the NCHW graphs, each variant used for its batch sizes, and the NCHW chain in its place
wherever the probe finds the blocked one broken. What onnxruntime's rewrite makes of the graphs inside
(its nodes, its shapes) is its own business and is not tested here; benchmarks/export_latency.py says
whether the blocked chain pays."""
from pathlib import Path

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import SHAPES_IMAGES, TINY_BUNDLE
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.evaluation import load_split
from edgekd.runtime import layout as layout_module
from edgekd.runtime.layout import blocked_handoff
from edgekd.runtime.backends.onnxruntime_cpu import PARALLEL_COPY_BYTES
from edgekd.runtime.sessions import make_session, session_options

pytestmark = pytest.mark.usefixtures("runtime_fixture")
MIXED = [0.5, 0.4, 0.3]  # thresholds that send the tiny model's samples to every exit


def segment_paths() -> list[Path]:
    return [TINY_BUNDLE / f"segment_{k}.onnx" for k in range(1, 5)]


@pytest.fixture(scope="module", params=[False, True], ids=["serial-copy", "parallel-copy"])
def blocked(request) -> list[bytes]:
    graphs = blocked_handoff(segment_paths(), lambda: session_options(1), parallel_copy=request.param)
    if graphs is None:
        pytest.skip(f"onnxruntime {ort.__version__} keeps no feature map of these graphs in its blocked (NCHWc) "
                    f"layout on this CPU (x86 only), so there is nothing to hand on blocked")
    return graphs


@pytest.fixture(scope="module")
def images():
    return load_split(EarlyExitModel(TINY_BUNDLE), SHAPES_IMAGES, "test")[0][:64]


def test_blocked_segments_compute_what_the_nchw_ones_do(blocked, images):
    nchw = [make_session(p, ["CPUExecutionProvider"], 1) for p in segment_paths()]
    fast = [make_session(g, ["CPUExecutionProvider"], 1, optimized=True) for g in blocked]
    a = b = images
    for plain, handed in zip(nchw, fast):
        a, logits_a = plain.run(None, {plain.get_inputs()[0].name: a})
        b, logits_b = handed.run(None, {handed.get_inputs()[0].name: b})
        np.testing.assert_allclose(logits_b, logits_a, atol=1e-5)


def residual_segments(tmp_path: Path, relu: bool) -> list[Path]:
    """Two segments of 16 channels; the first ends in conv(conv(x)) + conv(x), with a ReLU or without."""
    rng = np.random.default_rng(0)
    weight = lambda name: numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1, name)
    conv = lambda x, w, y: helper.make_node("Conv", [x, w], [y], pads=[1, 1, 1, 1])
    feature = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 16, 8, 8])
    ends = [helper.make_node("Add", ["b", "a"], ["s"]), helper.make_node("Relu", ["s"], ["feature_1"])] if relu else \
        [helper.make_node("Add", ["b", "a"], ["feature_1"])]
    first = helper.make_graph([conv("image", "w1", "a"), conv("a", "w2", "b"), *ends], "segment_1", [feature("image")],
                              [feature("feature_1")], [weight("w1"), weight("w2")])
    second = helper.make_graph([conv("feature_1", "w3", "feature_2")], "segment_2", [feature("feature_1")],
                               [feature("feature_2")], [weight("w3")])
    paths = [tmp_path / "segment_1.onnx", tmp_path / "segment_2.onnx"]
    for graph, path in zip((first, second), paths):
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return paths


@pytest.mark.parametrize("relu", [True, False], ids=["ends-in-relu", "no-relu"])
def test_a_residual_sum_handed_on_blocked_keeps_its_exact_values(tmp_path, relu):
    paths = residual_segments(tmp_path, relu)
    serial = blocked_handoff(paths, lambda: session_options(1))
    if serial is None:
        pytest.skip("nothing is handed on blocked on this CPU (x86 only)")
    parallel = blocked_handoff(paths, lambda: session_options(1), parallel_copy=True)
    x = np.random.default_rng(1).standard_normal((5, 16, 8, 8)).astype(np.float32)
    expected = x
    for path in paths:
        session = make_session(path, ["CPUExecutionProvider"], 1)
        expected = session.run(None, {session.get_inputs()[0].name: expected})[0]
    for graphs in (serial, parallel):
        if graphs is None:  # nothing stays blocked in this variant: the runtime runs the exported graphs
            continue
        got = x
        for graph in graphs:
            session = make_session(graph, ["CPUExecutionProvider"], 1, optimized=True)
            got = session.run(None, {session.get_inputs()[0].name: got})[0]
        np.testing.assert_array_equal(got, expected)  # a ReLU of values >= 0 copies them exactly


def test_each_batch_size_leaves_at_the_same_exits_as_on_nchw_segments(images):
    model, nchw = EarlyExitModel(TINY_BUNDLE), EarlyExitModel(TINY_BUNDLE, blocked_handoff=False)
    serial, parallel = model.backend.blocked_chain(parallel_copy=False), model.backend.blocked_chain(parallel_copy=True)
    image_bytes = max(4 * int(np.prod(e.feature_shape)) for e in model.manifest.exits[:-1])
    largest_serial = (PARALLEL_COPY_BYTES - 1) // image_bytes  # the most images whose maps stay under the switch
    assert 1 <= largest_serial < len(images)
    assert model.chain_for(1) is model.chain_for(largest_serial) is serial and model.chain_for(largest_serial + 1) is parallel
    assert nchw.chain_for(1) is nchw.chain_for(largest_serial + 1) is nchw.chain
    mixed_batches = 0
    for rows in (1, largest_serial, largest_serial + 1):
        for start in range(0, len(images), rows):
            x = images[start:start + rows]
            a, b = model.predict(x, mode="early", thresholds=MIXED), nchw.predict(x, mode="early", thresholds=MIXED)
            np.testing.assert_array_equal(a.exits, b.exits)
            np.testing.assert_array_equal(a.labels, b.labels)
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
            mixed_batches += len(set(a.exits.tolist())) > 1
    assert mixed_batches > 0  # some batches split between exits: compaction ran on the chain the runtime chose


def test_int8_graphs_agree_with_the_hand_off_on_or_off(images):
    int8, int8_nchw = EarlyExitModel(TINY_BUNDLE, precision="int8"), EarlyExitModel(TINY_BUNDLE, precision="int8", blocked_handoff=False)
    for i in range(8):
        a, b = (m.predict(images[i:i + 1], mode="early", thresholds=MIXED) for m in (int8, int8_nchw))
        assert a.exits[0] == b.exits[0] and a.labels[0] == b.labels[0]


def perturbed(graphs: list[bytes]) -> list[bytes]:
    """The graphs with the first weight of the last segment scaled: what a rewrite that changed the numbers gives."""
    last = onnx.load_from_string(graphs[-1])
    weight = next(t for t in last.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) > 1)
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.5, weight.name))
    return [*graphs[:-1], last.SerializeToString()]


def changed_rewrite(*args, **kwargs):
    raise ort.capi.onnxruntime_pybind11_state.Fail("[ONNXRuntimeError] : 1 : FAIL : Unknown op ReorderOutput")


@pytest.mark.parametrize("broken", ["wrong-numbers", "fails-to-load"])
def test_a_blocked_chain_the_probe_rejects_leaves_the_nchw_chain_in_its_place(monkeypatch, caplog, images, broken):
    """Where onnxruntime's internal rewrite changes (a release that computes other numbers, or refuses the
    rewritten graphs), the model runs the exported graphs instead, says so once at debug level, and
    predicts what the NCHW chain predicts."""
    real = layout_module.blocked_handoff
    if broken == "wrong-numbers":
        if real(segment_paths(), lambda: session_options(1)) is None:
            pytest.skip("nothing is handed on blocked on this CPU (x86 only), so there is no blocked chain to break")
        monkeypatch.setattr(layout_module, "blocked_handoff", lambda *a, **k: perturbed(real(*a, **k)))
    else:
        monkeypatch.setattr(layout_module, "blocked_handoff", changed_rewrite)
    model, nchw = EarlyExitModel(TINY_BUNDLE), EarlyExitModel(TINY_BUNDLE, blocked_handoff=False)
    with caplog.at_level(logging.DEBUG, logger="edgekd.runtime"):
        assert model.chain_for(1) is model.chain
        assert model.chain_for(1) is model.chain  # probed once: no second line
    lines = [r for r in caplog.records if r.name == "edgekd.runtime"]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG and "NCHW" in lines[0].getMessage()
    assert ("differ" if broken == "wrong-numbers" else "Unknown op ReorderOutput") in lines[0].getMessage()
    a, b = model.predict(images[:9], mode="early", thresholds=MIXED), nchw.predict(images[:9], mode="early", thresholds=MIXED)
    np.testing.assert_array_equal(a.exits, b.exits)
    np.testing.assert_array_equal(a.probs, b.probs)
