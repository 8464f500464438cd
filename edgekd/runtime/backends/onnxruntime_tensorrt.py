"""The `tensorrt` backend: the bundle's ONNX graphs through onnxruntime's TensorRT provider. The engines
it builds are cached in the bundle's `trt_cache/`, so only the first session of a graph pays the build.
Precision comes from the graphs (the bundle's FP16 or symmetric INT8 set, `precision='fp16'` /
`'int8'`), as TensorRT's strongly typed networks take it; the user's provider options go on top."""
from __future__ import annotations

from typing import Any

from edgekd.runtime.backends.base import OnnxruntimeBackend

ENGINE_CACHE = "trt_cache"


class TensorrtProviderBackend(OnnxruntimeBackend):
    name = "tensorrt"

    def default_options(self) -> dict[str, Any]:
        cache = self.bundle / ENGINE_CACHE
        cache.mkdir(exist_ok=True)
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}

    @property
    def providers(self) -> list[Any]:
        main, *rest = super().providers
        return [main, "CUDAExecutionProvider", *rest]


BACKEND = TensorrtProviderBackend
