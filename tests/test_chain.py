"""SegmentChain on the tiny test bundle: feature maps handed between segments through bound buffers give
the same numbers as plain `session.run`, with and without compaction, at any batch size and on any thread."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import SHAPES_IMAGES, TINY_BUNDLE
import edgekd.runtime.chain as chain
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.evaluation import load_split
from edgekd.runtime.chain import ChainedSession

pytestmark = pytest.mark.usefixtures("runtime_fixture")
MIXED = [0.5, 0.4, 0.3]  # thresholds that send the tiny model's samples to every exit


@pytest.fixture(scope="module")
def model():
    return EarlyExitModel(TINY_BUNDLE)


@pytest.fixture(scope="module")
def images(model):
    return load_split(model, SHAPES_IMAGES, "test")[0][:48]


@pytest.fixture(params=["bound", "plain"])
def path(request, monkeypatch):
    """Run a test on each of the chain's two paths: bound buffers, and plain run for every batch."""
    if request.param == "plain":
        monkeypatch.setattr(chain, "MAX_BOUND_ROWS", 0)
    return request.param


def test_cpu_segments_are_chained_through_bound_buffers(model):
    assert model.chain.bound and len(model.chain) == model.num_exits


@pytest.mark.parametrize("rows", [1, 3, 64])
def test_bound_buffers_start_on_a_cache_line(model, rows):
    buffers = model.chain.buffers(rows)
    arrays = [buffers.image, *buffers.features, *buffers.kept, *buffers.logits]
    assert all(a.ctypes.data % chain.CACHE_LINE == 0 and a.dtype == np.float32 and a.flags.c_contiguous for a in arrays)
    assert [a.shape[0] for a in arrays] == [buffers.rows] * len(arrays)


def test_chained_segments_reproduce_the_prefix_and_full_graphs(model, images, path):
    """Also how the native TensorRT backend, which has only segment engines, answers prefix and full requests."""
    full = model.session("full").run(None, {"image": images})
    for a, b in zip(full, ChainedSession(model.chain).run(None, {"image": images})):
        np.testing.assert_allclose(a, b, atol=1e-4)
    for k in range(1, model.num_exits + 1):
        (prefix,) = model.session(f"prefix_{k}").run(None, {"image": images})
        np.testing.assert_allclose(ChainedSession(model.chain, k).run(None, {"image": images})[0], prefix, atol=1e-4)


def test_compaction_feeds_the_next_segment_only_the_samples_kept(model, images, path):
    step = model.chain.start(images)
    keep = np.arange(len(images)) % 3 == 1
    first_feature = step.feature.copy()
    step.advance(keep)
    assert step.segment == 1 and step.rows == keep.sum() and step.seconds > 0
    _, alone = model.session("segment_2").run(None, {"feature_1": first_feature[keep]})
    np.testing.assert_allclose(step.logits, alone, atol=1e-5)


def test_bound_and_plain_paths_route_every_sample_alike(model, images, monkeypatch):
    bound = model.predict(images, mode="early", thresholds=MIXED)
    monkeypatch.setattr(chain, "MAX_BOUND_ROWS", 0)
    plain = model.predict(images, mode="early", thresholds=MIXED)
    assert len(set(bound.exits.tolist())) > 1
    np.testing.assert_array_equal(bound.exits, plain.exits)
    np.testing.assert_array_equal(bound.labels, plain.labels)
    np.testing.assert_allclose(bound.probs, plain.probs, atol=1e-6)
    np.testing.assert_allclose(bound.exit_scores, plain.exit_scores, atol=1e-6)


def test_buffers_grow_with_the_batch_and_keep_earlier_results_intact(model, images):
    one = model.predict(images[:1], mode="early", thresholds=MIXED)
    many = model.predict(images[:32], mode="early", thresholds=MIXED)
    assert model.chain.buffers(1).rows >= 32  # grown, not reallocated for the smaller batch
    again = model.predict(images[:1], mode="early", thresholds=MIXED)
    assert one.exits[0] == many.exits[0] == again.exits[0]
    np.testing.assert_allclose(one.probs[0], many.probs[0], atol=1e-5)
    np.testing.assert_allclose(one.probs, again.probs, atol=0)


def test_threads_sharing_a_model_get_their_own_buffers(model, images):
    starts = [i for i in range(0, 40, 2) for _ in range(3)]
    expected = {i: model.predict(images[i:i + 1 + i % 5], mode="early", thresholds=MIXED) for i in set(starts)}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: (i, model.predict(images[i:i + 1 + i % 5], mode="early", thresholds=MIXED)), starts))
    for i, result in results:
        np.testing.assert_array_equal(result.exits, expected[i].exits)
        np.testing.assert_allclose(result.probs, expected[i].probs, atol=1e-6)
