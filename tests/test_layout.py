"""Blocked hand-off between CPU segments (edgekd.runtime.layout) on the tiny test bundle: boundary
conversions removed, the same numbers as the NCHW graphs, and used only where it pays."""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from conftest import SHAPES_IMAGES, TINY_BUNDLE
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.calibration import load_split
from edgekd.runtime.layout import MAX_BLOCK, blocked_handoff, reorders
from edgekd.runtime.model import BLOCKED_MAX_ROWS
from edgekd.runtime.sessions import make_session, session_options

pytestmark = pytest.mark.usefixtures("runtime_fixture")
MIXED = [0.5, 0.4, 0.3]  # thresholds that send the tiny model's samples to every exit


def segment_paths() -> list[Path]:
    return [TINY_BUNDLE / f"segment_{k}.onnx" for k in range(1, 5)]


@pytest.fixture(scope="module")
def blocked() -> list[bytes]:
    graphs = blocked_handoff(segment_paths(), lambda: session_options(1))
    if graphs is None:
        pytest.skip(f"onnxruntime {ort.__version__} keeps no feature map of these graphs in its blocked (NCHWc) "
                    f"layout on this CPU (x86 only), so there is nothing to hand on blocked")
    return graphs


@pytest.fixture(scope="module")
def images():
    return load_split(EarlyExitModel(TINY_BUNDLE), SHAPES_IMAGES, "test")[0][:24]


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


def test_small_batches_leave_at_the_same_exits_as_on_nchw_segments(blocked, images):
    model, nchw = EarlyExitModel(TINY_BUNDLE), EarlyExitModel(TINY_BUNDLE, blocked_handoff=False)
    assert model.chain_for(1) is not model.chain and nchw.chain_for(1) is nchw.chain
    mixed_batches = 0
    for rows in (1, BLOCKED_MAX_ROWS):
        for start in range(0, len(images), rows):
            x = images[start:start + rows]
            a, b = model.predict(x, mode="early", thresholds=MIXED), nchw.predict(x, mode="early", thresholds=MIXED)
            np.testing.assert_array_equal(a.exits, b.exits)
            np.testing.assert_array_equal(a.labels, b.labels)
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
            mixed_batches += len(set(a.exits.tolist())) > 1
    assert mixed_batches > 0  # some batches split between exits: compaction ran on the blocked chain too


def test_larger_batches_run_on_nchw_segments_and_int8_graphs_agree_either_way(images):
    model = EarlyExitModel(TINY_BUNDLE)
    assert model.chain_for(BLOCKED_MAX_ROWS + 1) is model.chain
    int8, int8_nchw = EarlyExitModel(TINY_BUNDLE, precision="int8"), EarlyExitModel(TINY_BUNDLE, precision="int8", blocked_handoff=False)
    for i in range(8):
        a, b = (m.predict(images[i:i + 1], mode="early", thresholds=MIXED) for m in (int8, int8_nchw))
        assert a.exits[0] == b.exits[0] and a.labels[0] == b.labels[0]
