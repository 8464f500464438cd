"""onnxruntime sessions for a bundle's graphs: providers by short name, and thread settings that let
a chain of per-segment sessions share the cores instead of fighting over them.

Each session gets `threads` intra-op threads (default: all cores), one inter-op thread, sequential
execution, and intra-op spinning off: a spinning pool keeps its cores busy after its session
returns, which starves the next session of the chain (measured by benchmarks/export_latency.py).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import onnxruntime as ort

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


def make_session(path: Path, providers: list[Any], threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=providers)
