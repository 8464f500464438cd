"""The `cuda` backend: the bundle's ONNX graphs on onnxruntime's CUDA provider (onnxruntime-gpu), CPU as
the fallback for any node CUDA does not take. Provider options (`device_id`, `gpu_mem_limit`, ...) pass
through from the user. The early-exit loop runs on the `DeviceChain`: feature maps stay in GPU memory
as OrtValues from segment to segment, compaction gathers the kept rows on the GPU, and only images,
kept-row indices and logits cross to the host."""
from __future__ import annotations

from edgekd.runtime.backends.base import OnnxruntimeBackend
from edgekd.runtime.chain import Chain


class CudaBackend(OnnxruntimeBackend):
    name = "cuda"

    def chain_for(self, rows: int) -> Chain:
        return self.device_chain("cuda")


BACKEND = CudaBackend
