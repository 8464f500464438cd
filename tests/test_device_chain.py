"""The device chain and its row-gathering segments on CPU: the same code the CUDA and TensorRT backends
run, with host OrtValues standing in for GPU memory. It must give exactly what today's chain gives."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgekd.bundle import names, read_manifest
from edgekd.bundle.row_gather import with_row_gather
from edgekd.runtime.backends.onnxruntime_tensorrt import profile_options
from edgekd.runtime.chain import HostCopies
from edgekd.runtime.engine_cache import engine_cache
from edgekd.runtime.model import EarlyExitModel

PRECISIONS = ("fp32", "fp16", "int8")


def _walk(chain, images: np.ndarray, masks: list[np.ndarray | None]):
    """Logits of every segment run, compacting by each mask (None: everyone goes on), and the copies."""
    step = chain.start(images)
    logits = [step.logits.copy()]
    for keep in masks:
        step.advance(keep)
        logits.append(step.logits.copy())
    return logits, step.copies


def _masks(rng: np.random.Generator, rows: int, exits: int, compact: bool) -> list[np.ndarray | None]:
    """Random keep masks for exits 1..K-1 (each keeps at least one row), or none at all."""
    masks: list[np.ndarray | None] = []
    for _ in range(exits - 1):
        if not compact:
            masks.append(None)
            continue
        keep = rng.random(rows) < 0.6
        keep[rng.integers(rows)] = True
        masks.append(keep)
        rows = int(keep.sum())
    return masks


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("batch", (1, 7, 64))
def test_row_gathering_chain_gives_exactly_what_todays_chain_gives(runtime_fixture, precision, batch):
    model = EarlyExitModel(runtime_fixture, precision=precision)
    device, nchw, runtime = model.backend.device_chain("cpu"), model.chain, model.chain_for(batch)
    rng = np.random.default_rng(batch)
    images = rng.standard_normal((batch, *model.manifest.input.shape)).astype(np.float32)
    for compact in (True, True, True, False):
        masks = _masks(rng, batch, model.num_exits, compact)
        got, copies = _walk(device, images, masks)
        expected, host_copies = _walk(nchw, images, masks)
        for k, (a, b) in enumerate(zip(got, expected)):
            assert a.shape == b.shape and np.array_equal(a, b), f"exit {k + 1} at batch {batch}, {precision}"
        # the runtime's CPU chain (blocked hand-off) computes in another layout: equal to rounding
        for a, b in zip(got, _walk(runtime, images, masks)[0]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * max(1.0, float(np.abs(b).max())))
        compactions = sum(m is not None for m in masks)
        assert copies == HostCopies(images=1, feature_maps=0, rows=compactions, logits=model.num_exits)
        assert host_copies == HostCopies()  # the host chain on the CPU provider moves nothing between memories


def test_early_exit_on_the_device_chain_routes_every_sample_alike(runtime_fixture, monkeypatch):
    """predict(mode='early') on the chain the CUDA and TensorRT backends use: the same labels, exits
    and scores as on the CPU backend's own chain, batched and one image at a time."""
    reference = EarlyExitModel(runtime_fixture)
    model = EarlyExitModel(runtime_fixture, single_call=False)  # a single image walks the chain too, as on a GPU
    device = model.backend.device_chain("cpu")
    monkeypatch.setattr(model.backend, "chain_for", lambda rows: device)
    images = np.load(runtime_fixture / "validation.npz")["images"][:64]
    images = reference.manifest.preprocess.normalize(images)
    thresholds = [0.9, 0.9, 0.9]
    for batch in (images, images[:7], images[:1]):
        a = model.predict(batch, mode="early", thresholds=thresholds)
        b = reference.predict(batch, mode="early", thresholds=thresholds)
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.exits, b.exits)
        np.testing.assert_allclose(a.confidences, b.confidences, rtol=0, atol=1e-5)
        assert a.host_copies.feature_maps == 0 and a.host_copies.logits == int(b.exits.max())
    assert read_manifest(runtime_fixture, verify=True).num_exits == 4  # nothing was written into the bundle


def test_row_gathering_graph_has_the_rows_input_and_refuses_what_is_not_a_segment(runtime_fixture):
    manifest = read_manifest(runtime_fixture)
    graph = with_row_gather(runtime_fixture / manifest.graphs["segment_2"].file)
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["feature_1", names.ROWS]
    assert graph.graph.node[0].op_type == "Gather" and [o.name for o in graph.graph.output] == ["feature_2", "logits_2"]
    with pytest.raises(ValueError, match="made from a segment with one input"):
        with_row_gather(graph)


def test_tensorrt_provider_profiles_cover_batch_1_to_64_on_every_input(runtime_fixture):
    manifest = read_manifest(runtime_fixture)
    c, h, w = manifest.exits[1].feature_shape
    options = profile_options(manifest, names.rows_segment(3))
    assert options["trt_profile_min_shapes"] == f"feature_2:1x{c}x{h}x{w},rows:1"
    assert options["trt_profile_max_shapes"] == f"feature_2:64x{c}x{h}x{w},rows:64"
    assert profile_options(manifest, names.FULL)["trt_profile_max_shapes"] == "image:64x3x32x32"


def test_engine_cache_lives_in_the_user_cache_keyed_by_the_bundle(runtime_fixture, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    folder = engine_cache(runtime_fixture, "fp16")
    assert folder.is_dir() and folder.is_relative_to(tmp_path / "cache") and not folder.is_relative_to(runtime_fixture)
    assert engine_cache(runtime_fixture, "fp16") == folder and engine_cache(runtime_fixture, "int8") != folder
