"""The `cuda` backend: the bundle's ONNX graphs on onnxruntime's CUDA provider (onnxruntime-gpu), CPU as
the fallback for any node CUDA does not take. Provider options (`device_id`, `gpu_mem_limit`, ...) pass
through from the user."""
from __future__ import annotations

from edgekd.runtime.backends.base import OnnxruntimeBackend


class CudaBackend(OnnxruntimeBackend):
    name = "cuda"


BACKEND = CudaBackend
