"""onnxruntime sessions for a bundle's graphs: providers by short name, and thread settings that let
a chain of per-segment sessions share the cores instead of fighting over them.

Two thread set-ups (benchmarks/export_latency.py measures them against onnxruntime's default):
- default: each session its own pool of `threads` intra-op threads (all cores by default) that spins
  while a run lasts (no wake-up between kernels) and stops when it returns, so a finished
  session's threads do not spin against the next segment of the chain;
- `shared_threads=True`: one pool for every session of the process, which is faster still (no
  pool to wake per call). onnxruntime then refuses sessions with their own pools anywhere in the
  process, so edgekd's own commands (predict, calibrate, bench, demo) use it and the Python API
  leaves it opt-in. Where onnxruntime cannot share a pool, sessions fall back to their own.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import onnxruntime as ort
from onnxruntime.capi import _pybind_state as ort_internal

from edgekd.errors import BadInput

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


def resolve_providers(providers: Sequence[str] | None, bundle: Path) -> list[Any]:
    """Full provider names (CPU always last as the fallback), TensorRT with an engine cache in the bundle."""
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in (providers or ["cpu"])]
    available = ort.get_available_providers()
    missing = [n for n in names if n not in available]
    if missing:
        raise BadInput(f"onnxruntime provider(s) {', '.join(missing)} are not available here; available: {', '.join(available)}. "
                       f"CUDA and TensorRT need onnxruntime-gpu (on a Jetson, the JetPack build of onnxruntime)")
    resolved: list[Any] = []
    for name in names:
        if name == "TensorrtExecutionProvider":
            cache = bundle / "trt_cache"
            cache.mkdir(exist_ok=True)
            resolved.append((name, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache), "trt_fp16_enable": True}))
        else:
            resolved.append(name)
    if "CPUExecutionProvider" not in names:
        resolved.append("CPUExecutionProvider")
    return resolved


_shared_pool: dict[str, int] = {}


def shared_pool(threads: int) -> bool:
    """Create the process-wide thread pool once; False where onnxruntime cannot share one."""
    if "threads" in _shared_pool:
        return True
    setter = getattr(ort_internal, "set_global_thread_pool_sizes", None)
    if setter is None:
        return False
    try:
        setter(threads, 1)
    except RuntimeError:  # onnxruntime's environment already exists with per-session pools
        return False
    _shared_pool["threads"] = threads
    return True


def session_options(threads: int | None, *, share_pool: bool = False) -> ort.SessionOptions:
    """Sequential execution on `threads` intra-op threads (all cores by default): the shared pool, or a
    pool of the session's own that spins only while a run lasts."""
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    count = threads or os.cpu_count() or 1
    if share_pool and shared_pool(count):
        options.use_per_session_threads = False
    else:
        options.intra_op_num_threads = count
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def make_session(model: Path | bytes, providers: list[Any], threads: int | None, *, share_pool: bool = False,
                 optimized: bool = False) -> ort.InferenceSession:
    """A session for a graph file, or for a serialized graph; `optimized`: the graph was already optimized
    for this machine (`layout.blocked_handoff`), so onnxruntime must leave it as it is."""
    options = session_options(threads, share_pool=share_pool)
    if optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=providers)
