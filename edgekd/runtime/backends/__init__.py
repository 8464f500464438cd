"""Runtime backends, chosen by name: each one file behind the `Backend` interface (`base`).

| name | file | runs |
|---|---|---|
| `cpu` | `onnxruntime_cpu` | the bundle's ONNX graphs on onnxruntime's CPU provider (the default) |
| `cuda` | `onnxruntime_cuda` | the ONNX graphs on onnxruntime's CUDA provider (onnxruntime-gpu) |
| `tensorrt` | `onnxruntime_tensorrt` | the ONNX graphs through onnxruntime's TensorRT provider, engines cached in the bundle |
| `tensorrt-engines` | `tensorrt_engines` | the bundle's native TensorRT engines (`edgekd export BUNDLE --format tensorrt`) |

A backend module is imported only when chosen, so a CPU machine never imports TensorRT. The table of
names, modules and providers is `edgekd.bundle.backends`, which `edgekd doctor` reads too.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgekd.bundle import Manifest
from edgekd.bundle.backends import BACKENDS
from edgekd.errors import BadInput
from edgekd.registry import closest
from edgekd.runtime.backends.base import Backend

def open_backend(name: str, bundle: Path, manifest: Manifest, *, precision: str | None = None, threads: int | None = None,
                 shared_threads: bool = False, provider_options: dict[str, Any] | None = None, **backend_options: Any) -> Backend:
    """The backend `name`, ready to make sessions for the bundle's graphs at `precision`; `backend_options` are
    that backend's own (the CPU backend's `blocked_handoff`)."""
    if name not in BACKENDS:
        hint = closest(name, list(BACKENDS))
        raise BadInput(f"unknown backend '{name}'" + (f"; did you mean '{hint}'?" if hint else "") + f" Backends: {', '.join(BACKENDS)}")
    module = importlib.import_module(f"{__name__}.{BACKENDS[name].module}")
    return module.BACKEND(bundle, manifest, precision=precision, threads=threads, shared_threads=shared_threads,
                          provider_options=dict(provider_options or {}), **backend_options)


__all__ = ["BACKENDS", "Backend", "open_backend"]
