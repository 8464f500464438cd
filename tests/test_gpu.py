"""The GPU paths, run where a CUDA GPU is (`benchmarks/gpu_check.sh` runs them and writes their figures
into one report); each skips, saying why, where its GPU, provider or package is missing.

- a CUDA AMP training step in bf16 and fp16, and a DDP step with nccl where more than one GPU exists;
- strongly typed TensorRT engines of each precision, built from the bundle and checked against
  onnxruntime's CPU on the same graphs;
- early exit on the CUDA provider, the TensorRT provider and the native engines: the same answers as
  on CPU, the host copies per batch, and batch-1 latency against the full model on the same backend.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.gpu
REPORT = os.environ.get("EDGEKD_GPU_REPORT")  # gpu_check.sh: where each test adds its figures (JSON lines)


def report(check: str, **figures: object) -> None:
    """Add one check's figures to the GPU report, where one is being written."""
    if REPORT:
        with open(REPORT, "a") as out:
            out.write(json.dumps({"check": check, **figures}) + "\n")


def _torch_gpus() -> int:
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _engines_usable() -> str | None:
    """Why the native engines cannot be built and run here, or None."""
    for module, hint in (("tensorrt", "TensorRT is not installed (pip install 'edgekd[tensorrt]')"),
                         ("cuda", "cuda-python is not installed (pip install 'edgekd[tensorrt]')")):
        if importlib.util.find_spec(module) is None:
            return hint
    from edgekd.errors import EdgekdError
    from edgekd.cuda_runtime import gpu_name

    try:
        gpu_name()
    except EdgekdError as err:
        return str(err)
    return None


needs_torch_gpu = pytest.mark.skipif(_torch_gpus() == 0, reason="no CUDA GPU visible to PyTorch (or no PyTorch)")


@needs_torch_gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_training_step(tmp_path, amp):
    start = time.perf_counter()
    result = run_cli("ce_resnet18", "--profile", "smoke", "--runs-dir", str(tmp_path), "--set", "train.device=cuda",
                     "--set", f"train.amp={amp}", "--set", "train.epochs=1", module="edgekd.recipe", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "ce_resnet18-smoke" / "results.json").read_text())
    val = results["best"]["val"]["top1"]
    assert len(val) == 4 and all(np.isfinite(val))
    record = json.loads((tmp_path / "ce_resnet18-smoke" / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["train"]["loss"])
    report(f"CUDA AMP training ({amp})", loss=record["train"]["loss"], val_top1=val, seconds=round(time.perf_counter() - start, 1))


@pytest.mark.skipif(_torch_gpus() < 2, reason="DDP with nccl needs more than one CUDA GPU")
def test_ddp_step_with_nccl(tmp_path):
    gpus = _torch_gpus()
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus),
                             "-m", "edgekd.recipe", "ce_resnet18", "--profile", "smoke", "--runs-dir", str(tmp_path),
                             "--set", "train.device=cuda", "--set", "train.epochs=1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "ce_resnet18-smoke" / "results.json").read_text())
    assert results["best"]["test"]["images"] == 256  # every test image counted once over the ranks
    report("DDP (nccl)", gpus=gpus, val_top1=results["best"]["val"]["top1"])


def _images(bundle: Path, count: int) -> np.ndarray:
    from edgekd.bundle import read_manifest

    pixels = np.load(bundle / "validation.npz")["images"][:count]
    return read_manifest(bundle).preprocess.normalize(pixels)


def _batch1_ms(model, images: np.ndarray, **setting) -> float:
    """Median milliseconds of one-image `predict` calls over `images`, after a warm-up pass."""
    for i in range(len(images)):
        model.predict(images[i:i + 1], **setting)
    seconds = []
    for i in range(len(images)):
        start = time.perf_counter()
        model.predict(images[i:i + 1], **setting)
        seconds.append(time.perf_counter() - start)
    return round(1e3 * statistics.median(seconds), 4)


@pytest.fixture(scope="module")
def engine_bundles(runtime_fixture, tmp_path_factory):
    """The tiny bundle with engines of each precision (one copy each), built once."""
    reason = _engines_usable()
    if reason:
        pytest.skip(reason)
    from edgekd.export.exporter import export

    built = {}
    for precision in ("fp32", "fp16", "int8"):
        copy = tmp_path_factory.mktemp(f"engines-{precision}") / "bundle"
        shutil.copytree(runtime_fixture, copy)
        start = time.perf_counter()
        export(copy, "tensorrt", precision=precision, log=lambda message: None)
        built[precision] = (copy, round(time.perf_counter() - start, 1))
    return built


TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2, "int8": 5e-2}  # max |probability difference| against onnxruntime CPU


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engines_of_each_precision_match_onnxruntime_cpu(engine_bundles, precision):
    from edgekd.bundle import read_manifest
    from edgekd.runtime import EarlyExitModel

    bundle, build_seconds = engine_bundles[precision]
    manifest = read_manifest(bundle)
    assert sorted(manifest.tensorrt.engines) == ["rows_segment_2", "rows_segment_3", "rows_segment_4", "segment_1"]
    assert manifest.tensorrt.precision == precision and (bundle / "tensorrt" / "timing.cache").is_file()
    images = _images(bundle, 64)
    cpu = EarlyExitModel(bundle, precision=precision).predict(images, mode="all").all_probs
    engines = EarlyExitModel(bundle, backend="tensorrt-engines").predict(images, mode="all").all_probs
    diffs = [float(np.abs(a - b).max()) for a, b in zip(cpu, engines)]
    agreement = [float((a.argmax(1) == b.argmax(1)).mean()) for a, b in zip(cpu, engines)]
    report(f"TensorRT engines ({precision}) vs onnxruntime CPU", build_seconds=build_seconds,
           max_abs_prob_diff=[round(d, 5) for d in diffs], argmax_agreement=agreement)
    assert max(diffs) < TOLERANCE[precision] and min(agreement) >= 0.95


def _gpu_model(backend: str, bundle: Path):
    """EarlyExitModel on `backend`, or a skip saying what is missing."""
    from edgekd.runtime import EarlyExitModel

    if backend == "tensorrt-engines":
        return EarlyExitModel(bundle, backend=backend)
    provider = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[backend]
    if provider not in _ort_providers():
        pytest.skip(f"onnxruntime has no {provider} here (install onnxruntime-gpu, with TensorRT for the tensorrt backend)")
    return EarlyExitModel(bundle, backend=backend, precision="fp32")


@pytest.mark.parametrize("backend", ["cuda", "tensorrt", "tensorrt-engines"])
def test_early_exit_on_the_gpu_keeps_feature_maps_on_the_device(runtime_fixture, request, backend, tmp_path, monkeypatch):
    from edgekd.runtime import EarlyExitModel

    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    bundle = request.getfixturevalue("engine_bundles")["fp32"][0] if backend == "tensorrt-engines" else runtime_fixture
    model = _gpu_model(backend, bundle)
    cpu = EarlyExitModel(bundle)
    images = _images(bundle, 64)
    thresholds = [0.9, 0.9, 0.9]
    gpu_answer = model.predict(images, mode="early", thresholds=thresholds)
    cpu_answer = cpu.predict(images, mode="early", thresholds=thresholds)
    same_exit = float((gpu_answer.exits == cpu_answer.exits).mean())
    same_label = float((gpu_answer.labels == cpu_answer.labels).mean())
    one = [model.predict(images[i:i + 1], mode="early", thresholds=thresholds).host_copies for i in range(16)]
    early_ms = _batch1_ms(model, images[:32], mode="early", thresholds=thresholds)
    full_ms = _batch1_ms(model, images[:32], mode="exit", exit=model.num_exits)
    report(f"early exit on {backend}", providers=[str(p) for p in model.providers], same_exit_as_cpu=same_exit,
           same_label_as_cpu=same_label, host_copies_batch_64=vars(gpu_answer.host_copies),
           host_copies_batch_1_mean=round(float(np.mean([c.total for c in one])), 2),
           batch1_early_ms=early_ms, batch1_full_ms=full_ms, ratio=round(early_ms / full_ms, 3))
    assert gpu_answer.host_copies.feature_maps == 0 and all(c.feature_maps == 0 for c in one)
    assert same_label >= 0.95 and same_exit >= 0.9
