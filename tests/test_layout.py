"""Blocked hand-off between CPU segments (edgekd.runtime.layout) on the tiny test bundle, in both
variants (small feature maps: onnxruntime's own one-thread copy; large: a parallel ReLU copy): boundary
conversions removed, the same numbers as the NCHW graphs, and each variant used for its batch sizes."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import SHAPES_IMAGES, TINY_BUNDLE
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.calibration import load_split
from edgekd.runtime.layout import MAX_BLOCK, blocked_handoff, reorders
from edgekd.runtime.model import PARALLEL_COPY_BYTES
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


def optimized_reorders(path: Path, tmp_path: Path) -> int:
    options = session_options(1)
    options.optimized_model_filepath = str(tmp_path / path.name)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return reorders(tmp_path / path.name)


def test_each_blocked_boundary_loses_both_conversions(blocked, tmp_path):
    before = [optimized_reorders(p, tmp_path) for p in segment_paths()]
    after = [reorders(g) for g in blocked]
    removed = sum(before) - sum(after)
    assert removed >= 2 and removed % 2 == 0, (before, after)
    assert all(a <= b for a, b in zip(after, before))


def test_blocked_segments_compute_what_the_nchw_ones_do(blocked, images):
    nchw = [make_session(p, ["CPUExecutionProvider"], 1) for p in segment_paths()]
    fast = [make_session(g, ["CPUExecutionProvider"], 1, optimized=True) for g in blocked]
    a = b = images
    for plain, handed in zip(nchw, fast):
        a, logits_a = plain.run(None, {plain.get_inputs()[0].name: a})
        b, logits_b = handed.run(None, {handed.get_inputs()[0].name: b})
        np.testing.assert_allclose(logits_b, logits_a, atol=1e-5)


def test_boundaries_of_whole_blocks_keep_their_real_shape(blocked, images):
    """A declared boundary shape is the real one, and it is declared wherever blocking pads no channel
    (onnxruntime plans in-place sums from it)."""
    x, whole = images[:3], 0
    for graph in blocked:
        session = make_session(graph, ["CPUExecutionProvider"], 1, optimized=True)
        declared = session.get_inputs()[0].shape
        if x.shape[1] % MAX_BLOCK == 0:
            assert declared[1:] == list(x.shape[1:])
            whole += 1
        elif all(isinstance(d, int) for d in declared[1:]):
            assert declared[1:] == list(x.shape[1:])
        x = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert whole >= 1


def hand_ons(graph: bytes) -> int:
    return sum(n.name.endswith("/hand_on") for n in onnx.load_from_string(graph).graph.node)


def test_only_the_parallel_copy_variant_hands_in_place_sums_on_by_relu():
    serial, parallel = (blocked_handoff(segment_paths(), lambda: session_options(1), parallel_copy=p) for p in (False, True))
    if serial is None:
        pytest.skip("nothing is handed on blocked on this CPU (x86 only)")
    assert sum(map(hand_ons, serial)) == 0 and sum(map(hand_ons, parallel)) >= 1  # the tiny model's third stage ends in a residual sum


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
def test_parallel_copy_hands_an_in_place_sum_on_blocked_only_where_a_relu_can_copy_it(tmp_path, relu):
    paths = residual_segments(tmp_path, relu)
    serial = blocked_handoff(paths, lambda: session_options(1))
    if serial is None:
        pytest.skip("nothing is handed on blocked on this CPU (x86 only)")
    parallel = blocked_handoff(paths, lambda: session_options(1), parallel_copy=True)
    if not relu:
        assert parallel is None  # one thread would copy the sum out: the two conversions stay
        return
    assert hand_ons(parallel[0]) == 1 and [reorders(g) for g in parallel] == [reorders(g) for g in serial]  # the boundary's two went
    x = np.random.default_rng(1).standard_normal((5, 16, 8, 8)).astype(np.float32)
    expected = x
    for path in paths:
        session = make_session(path, ["CPUExecutionProvider"], 1)
        expected = session.run(None, {session.get_inputs()[0].name: expected})[0]
    got = x
    for graph in parallel:
        session = make_session(graph, ["CPUExecutionProvider"], 1, optimized=True)
        got = session.run(None, {session.get_inputs()[0].name: got})[0]
    np.testing.assert_array_equal(got, expected)


def test_each_batch_size_leaves_at_the_same_exits_as_on_nchw_segments(images):
    model, nchw = EarlyExitModel(TINY_BUNDLE), EarlyExitModel(TINY_BUNDLE, blocked_handoff=False)
    serial, parallel = model.blocked_chain(parallel_copy=False), model.blocked_chain(parallel_copy=True)
    if serial is model.chain:
        pytest.skip("nothing is handed on blocked on this CPU (x86 only)")
    image_bytes = max(4 * int(np.prod(e["feature_shape"])) for e in model.manifest["exits"][:-1])
    largest_serial = (PARALLEL_COPY_BYTES - 1) // image_bytes  # the most images whose maps stay under the switch
    assert 1 <= largest_serial < len(images) and parallel is not model.chain and parallel is not serial
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
    assert mixed_batches > 0  # some batches split between exits: compaction ran on the blocked chain too


def test_int8_graphs_agree_with_the_hand_off_on_or_off(images):
    int8, int8_nchw = EarlyExitModel(TINY_BUNDLE, precision="int8"), EarlyExitModel(TINY_BUNDLE, precision="int8", blocked_handoff=False)
    for i in range(8):
        a, b = (m.predict(images[i:i + 1], mode="early", thresholds=MIXED) for m in (int8, int8_nchw))
        assert a.exits[0] == b.exits[0] and a.labels[0] == b.labels[0]
