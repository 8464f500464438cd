"""TensorRT engines, one per segment, built from a bundle's ONNX graphs with the TensorRT Python API.

Engines are specific to the GPU and TensorRT version that build them, so this runs on the target
device: `edgekd export export/<bundle> --format tensorrt` on a Jetson turns an ONNX bundle into
engines in place (a run folder is exported to ONNX first, in the same bundle). FP16 by default; `int8`
calibrates with TensorRT's entropy calibrator on the calibration images an `onnx-int8` bundle stores,
and keeps the calibration cache in the bundle so later builds reuse it. A timing cache speeds up rebuilds.
Without TensorRT or a CUDA GPU the command says exactly which is missing.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.bundle import Manifest, names
from edgekd.bundle.files import load_calibration_sample
from edgekd.bundle.manifest import TensorRTEngines
from edgekd.errors import EdgekdError
from edgekd.export.job import ExportJob
from edgekd.export.tensorrt_ops import unsupported_ops

ENGINE_DIR = "tensorrt"
MAX_BATCH = 64


def _tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise EdgekdError("TensorRT is not installed. On a Jetson it comes with JetPack (python3-libnvinfer); on an x86 "
                          "machine with an NVIDIA GPU: pip install 'edgekd[tensorrt]'") from None
    return trt


def _cuda_device() -> Any:
    try:
        import torch
    except ImportError:
        raise EdgekdError("building TensorRT engines needs PyTorch with CUDA for the calibration buffers: "
                          "pip install 'edgekd[train]'") from None
    if not torch.cuda.is_available():
        raise EdgekdError("TensorRT engines must be built on the GPU that will run them, and no CUDA GPU is visible here. "
                          "Copy the ONNX bundle to the device and run `edgekd export BUNDLE --format tensorrt` there")
    return torch


def add(job: ExportJob) -> list[str]:
    """Engines for every segment of the bundle being built or extended; returns the files written."""
    trt = _tensorrt()
    torch = _cuda_device()
    source, manifest, opts = job.folder, job.manifest, job.opts
    assert manifest is not None
    engine_dir = source / ENGINE_DIR
    shutil.rmtree(engine_dir, ignore_errors=True)
    engine_dir.mkdir()
    logger = trt.Logger(trt.Logger.WARNING)
    timing_cache_path = engine_dir / "timing.cache"
    engines = {}
    precision = "int8" if opts.get("int8") else "fp16" if opts["fp16"] else "fp32"
    for k in range(1, manifest.num_exits + 1):
        name = names.segment(k)
        graph = manifest.graphs[name]
        onnx_path = source / graph.file
        missing = unsupported_ops(onnx_path)
        if missing:
            raise EdgekdError(f"{onnx_path.name} uses operators TensorRT's ONNX parser does not support: {', '.join(sorted(missing))}")
        calibrator = _calibrator(trt, torch, source, manifest, k, engine_dir) if opts.get("int8") else None
        plan = _build(trt, logger, onnx_path, graph.inputs[0], manifest.segment_input_shape(k), opts, timing_cache_path, calibrator)
        (engine_dir / f"{name}.engine").write_bytes(plan)
        engines[name] = f"{ENGINE_DIR}/{name}.engine"
        job.log(f"{name}: engine built ({len(plan) / 1e6:.1f} MB, {precision.upper()})")
    manifest.tensorrt = TensorRTEngines(version=trt.__version__, device=torch.cuda.get_device_name(), engines=engines,
                                        precision=precision, max_batch=MAX_BATCH)
    return [p.relative_to(source).as_posix() for p in engine_dir.iterdir()]


def _build(trt: Any, logger: Any, onnx_path: Path, input_name: str, shape: tuple[int, ...], opts: dict[str, Any],
           timing_cache_path: Path, calibrator: Any) -> bytes:
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgekdError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    cache = config.create_timing_cache(timing_cache_path.read_bytes() if timing_cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if opts["fp16"] or opts.get("int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if calibrator is not None:
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (1, *shape), (8, *shape), (MAX_BATCH, *shape))
    config.add_optimization_profile(profile)
    if calibrator is not None:
        config.set_calibration_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EdgekdError(f"TensorRT failed to build an engine from {onnx_path.name}; its log above says why")
    timing_cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return bytes(plan)


def _calibrator(trt: Any, torch: Any, source: Path, manifest: Manifest, k: int, engine_dir: Path) -> Any:
    """Entropy calibrator for segment k, fed from the bundle's calibration images through the FP32
    segments before it (onnxruntime), with a per-segment calibration cache."""
    if manifest.calibration_sample is None:
        raise EdgekdError(f"INT8 engines need calibration images and {source} has none; export the run with "
                          f"--format onnx-int8 (which stores them in the bundle), then build engines from that bundle")
    from edgekd.export.parity import cpu_session

    batches = manifest.preprocess.normalize(load_calibration_sample(source, manifest))
    for j in range(1, k):
        graph = manifest.graphs[names.segment(j)]
        batches = cpu_session(source / graph.file).run([graph.outputs[0]], {graph.inputs[0]: batches})[0]
    cache_path = engine_dir / f"{names.segment(k)}.calibration.cache"

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.chunks = iter(batches[i:i + 32] for i in range(0, len(batches) - 31, 32))
            self.device = torch.empty((32, *batches.shape[1:]), dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return 32

        def get_batch(self, names: list[str]) -> list[int] | None:
            chunk = next(self.chunks, None)
            if chunk is None:
                return None
            self.device.copy_(torch.from_numpy(np.ascontiguousarray(chunk)))
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_path.write_bytes(bytes(cache))

    return Calibrator()
