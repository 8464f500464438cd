"""The runtime's backends by name: the module that implements each and the onnxruntime execution
provider it needs. Torch- and onnxruntime-free, so `edgekd doctor` (which must work where
onnxruntime is missing) reads the same table `edgekd.runtime.backends` dispatches on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


# The batch sizes the TensorRT backends build their optimization profiles for: every batch from 1 to
# MAX_BATCH runs without an engine rebuild (compaction shrinks batches), tuned for OPT_BATCH.
MAX_BATCH = 64
OPT_BATCH = 1


@dataclass(frozen=True)
class BackendSpec:
    module: str  # under edgekd.runtime.backends
    provider: Optional[str]  # the onnxruntime execution provider it runs on; None: not onnxruntime


BACKENDS: dict[str, BackendSpec] = {
    "cpu": BackendSpec("onnxruntime_cpu", "CPUExecutionProvider"),
    "cuda": BackendSpec("onnxruntime_cuda", "CUDAExecutionProvider"),
    "tensorrt": BackendSpec("onnxruntime_tensorrt", "TensorrtExecutionProvider"),
    "tensorrt-engines": BackendSpec("tensorrt_engines", None),
}


def onnxruntime_backends(providers: list[str]) -> list[str]:
    """The backends that run a bundle's ONNX graphs with these onnxruntime providers available."""
    return [name for name, spec in BACKENDS.items() if spec.provider is not None and spec.provider in providers]
