"""TensorRT engines, one per segment, built from a bundle's ONNX graphs with the TensorRT Python API.

Engines are specific to the GPU and TensorRT version that build them, so this runs on the target
device: `edgekd export export/<bundle> --format tensorrt` on a Jetson turns an ONNX bundle into
engines in place (a run folder is exported to ONNX first, in the same bundle).

The networks are strongly typed, the same way on TensorRT 10 (the STRONGLY_TYPED creation flag) and 11
(where strong typing is the only mode and the precision flags and INT8 calibrators are gone): each
engine computes in the types its ONNX graph states. So the precision is the graph set's: `fp16` (the
default where the bundle has the `onnx-fp16` graphs), `int8` (the symmetric Q/DQ graphs of
`onnx-int8`, scales already calibrated) or `fp32`. Segments 2..K are built from their row-gathering
graphs (`edgekd.bundle.row_gather`), so the runtime compacts on the GPU and chains device buffers.
Each engine has one optimization profile for batch 1 to `max_batch`; the timing cache is kept in the
bundle's engine folder so rebuilds are quicker. Building needs TensorRT and cuda-python, not torch.
Before building, TensorRT's own parser says whether it supports every node (`supports_model`); the
stored operator list (`tensorrt_ops`) is the offline check of the training machine.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgekd.bundle import names
from edgekd.bundle.backends import OPT_BATCH
from edgekd.bundle.manifest import FP16, FP32, Manifest, TensorRTEngines
from edgekd.bundle.row_gather import with_row_gather
from edgekd.errors import EdgekdError
from edgekd.export.job import ExportJob
from edgekd.cuda_runtime import gpu_name, tensorrt

ENGINE_DIR = "tensorrt"
ENGINE_PRECISIONS = (FP32, FP16, "int8")  # int8-u8s8 has zero points, which TensorRT's Q/DQ does not take


def add(job: ExportJob) -> list[str]:
    """Engines for every segment of the bundle being built or extended; returns the files written."""
    trt = tensorrt()
    device = gpu_name()
    source, manifest, opts = job.folder, job.manifest, job.opts
    assert manifest is not None
    precision = engine_precision(manifest, opts.get("precision"), job.log)
    engine_dir = source / ENGINE_DIR
    shutil.rmtree(engine_dir, ignore_errors=True)
    engine_dir.mkdir()
    logger = trt.Logger(trt.Logger.WARNING)
    timing_cache_path = engine_dir / "timing.cache"
    engines = {}
    for k in range(1, manifest.num_exits + 1):
        name = names.segment(k) if k == 1 else names.rows_segment(k)
        graph = manifest.graph_path(source, names.segment(k), precision)
        model = graph.read_bytes() if k == 1 else with_row_gather(graph).SerializeToString()
        plan = _build(trt, logger, model, name, manifest.input_shapes(name), opts["max_batch"], timing_cache_path)
        (engine_dir / f"{name}.engine").write_bytes(plan)
        engines[name] = f"{ENGINE_DIR}/{name}.engine"
        job.log(f"{name}: engine built ({len(plan) / 1e6:.1f} MB, {precision.upper()}, strongly typed, batch 1..{opts['max_batch']})")
    manifest.tensorrt = TensorRTEngines(version=trt.__version__, device=device, engines=engines, precision=precision,
                                        max_batch=opts["max_batch"])
    return [p.relative_to(source).as_posix() for p in engine_dir.iterdir()]


def engine_precision(manifest: Manifest, requested: str | None, log: Any) -> str:
    """The graph set to build from: `requested`, else FP16 where the bundle has it, else FP32 (said in the log)."""
    if requested is None:
        if FP16 in manifest.precision_names:
            return FP16
        log("building FP32 engines: the bundle has no FP16 graphs (export the run with --format onnx-fp16 for FP16 engines)")
        return FP32
    if requested not in ENGINE_PRECISIONS:
        raise EdgekdError(f"TensorRT engines are built in {', '.join(ENGINE_PRECISIONS)}, not '{requested}' "
                          f"(int8-u8s8's zero points are onnxruntime-CPU only; export --format onnx-int8 for symmetric INT8)")
    if requested not in manifest.precision_names:
        fix = {FP16: "--format onnx-fp16", "int8": "--format onnx-int8"}[requested]
        raise EdgekdError(f"the bundle has no {requested} graphs to build {requested} engines from: export the run with {fix} "
                          f"(on the training machine), then build the engines from that bundle")
    return requested


def _network_flags(trt: Any) -> int:
    """Strongly typed: TensorRT 10's creation flag; TensorRT 11 has no other mode (and may lack the flag)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _check_supported(trt: Any, builder: Any, logger: Any, model: bytes, name: str) -> None:
    """TensorRT's parser's own verdict on every node of the graph, before the build (on a network of its
    own: `supports_model_v2` may fill the network it parses into)."""
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    check = getattr(parser, "supports_model_v2", None)
    supported = check(model) if check is not None else parser.supports_model(model)[0]
    if not supported:
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "no reason given"
        raise EdgekdError(f"TensorRT {trt.__version__}'s ONNX parser does not support every node of {name}: {errors}")


def _build(trt: Any, logger: Any, model: bytes, name: str, shapes: dict[str, tuple[int, ...]], max_batch: int,
           timing_cache_path: Path) -> bytes:
    builder = trt.Builder(logger)
    _check_supported(trt, builder, logger, model, name)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgekdError(f"TensorRT could not parse {name}: {errors}")
    config = builder.create_builder_config()
    cache = config.create_timing_cache(timing_cache_path.read_bytes() if timing_cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for input_name, shape in shapes.items():
        profile.set_shape(input_name, (1, *shape), (min(OPT_BATCH, max_batch), *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EdgekdError(f"TensorRT failed to build an engine from {name}; its log above says why")
    timing_cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return bytes(plan)
