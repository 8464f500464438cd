"""The `tensorrt` backend: the bundle's ONNX graphs through onnxruntime's TensorRT provider (CUDA, then
CPU, for any node TensorRT does not take).

- Precision comes from the graphs: the bundle's FP16 set by default where it has one (else FP32), or
  `precision='int8'` for the symmetric Q/DQ set. No `trt_fp16_enable` / `trt_int8_enable`: without them
  onnxruntime builds strongly typed networks, which TensorRT 11 requires (it removed the precision flags).
- Every session gets an optimization profile for batch 1 to `MAX_BATCH` on each of its inputs, so the
  shrinking batches of compaction never trigger an engine rebuild.
- Engines and the timing cache go to the user cache (`edgekd.runtime.engine_cache`), not the bundle.
- The early-exit loop runs on the `DeviceChain`, feature maps staying in GPU memory.
The user's provider options go on top of these.
"""
from __future__ import annotations

from typing import Any

from edgekd.bundle import names
from edgekd.bundle.backends import MAX_BATCH, OPT_BATCH
from edgekd.bundle.manifest import FP16, Manifest
from edgekd.runtime.backends.base import OnnxruntimeBackend
from edgekd.runtime.chain import Chain
from edgekd.runtime.engine_cache import engine_cache


def profile_options(manifest: Manifest, graph: str) -> dict[str, str]:
    """onnxruntime's trt_profile_{min,opt,max}_shapes for graph `graph`: batch 1, OPT_BATCH and MAX_BATCH."""
    shapes = manifest.input_shapes(graph)

    def at(batch: int) -> str:
        return ",".join(f"{name}:" + "x".join(map(str, (batch, *shape))) for name, shape in shapes.items())

    return {"trt_profile_min_shapes": at(1), "trt_profile_opt_shapes": at(OPT_BATCH), "trt_profile_max_shapes": at(MAX_BATCH)}


class TensorrtProviderBackend(OnnxruntimeBackend):
    name = "tensorrt"

    def resolve_precision(self, precision: str | None) -> str:
        if precision is None and FP16 in self.manifest.precision_names:
            precision = FP16
        return super().resolve_precision(precision)

    def default_options(self) -> dict[str, Any]:
        cache = str(engine_cache(self.bundle, self.precision))
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}

    def providers_for(self, graph: str) -> list[Any]:
        options = {**self.default_options(), **profile_options(self.manifest, graph), **self.provider_options}
        return [(self.provider, options), "CUDAExecutionProvider", "CPUExecutionProvider"]

    @property
    def providers(self) -> list[Any]:
        return self.providers_for(names.FULL)

    def chain_for(self, rows: int) -> Chain:
        return self.device_chain("cuda")


BACKEND = TensorrtProviderBackend
