"""TensorRT and the CUDA runtime (cuda-python), imported only where a GPU path runs, with one message
each for what is missing. What the native engines need, to build (`edgekd.export`) and to run; no torch.
"""
from __future__ import annotations

from typing import Any

from edgekd.errors import BadInput

TENSORRT_MISSING = ("TensorRT is not installed. On a Jetson it comes with JetPack (python3-libnvinfer; create the "
                    "virtual environment with --system-site-packages); on an x86 machine with an NVIDIA GPU: "
                    "pip install 'edgekd[tensorrt]'. Without it, run the ONNX graphs (backend cpu, cuda or tensorrt)")
NO_GPU = ("no CUDA GPU is visible here. TensorRT engines are built on, and run on, the GPU that will use them: "
          "copy the ONNX bundle to the device and run `edgekd export BUNDLE --format tensorrt` there")


def tensorrt() -> Any:
    """The tensorrt module, or BadInput saying how to install it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BadInput(TENSORRT_MISSING) from None
    return trt


def cudart() -> Any:
    """cuda-python's CUDA runtime bindings, or BadInput saying how to install them."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise BadInput("the TensorRT engines need cuda-python >= 12.6 for their device memory: pip install 'edgekd[tensorrt]' "
                       "(or pip install 'cuda-python>=12.6')") from None
    return runtime


def check(result: Any) -> Any:
    """cuda-python returns (error, value...): raise on an error, return the value (or values)."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(f"CUDA call failed: {error}")
    return values[0] if len(values) == 1 else values


def gpu_name() -> str:
    """The name of CUDA device 0; BadInput where no CUDA GPU is visible."""
    runtime = cudart()
    try:
        count = check(runtime.cudaGetDeviceCount())
    except RuntimeError:
        count = 0
    if count == 0:
        raise BadInput(NO_GPU)
    name = check(runtime.cudaGetDeviceProperties(0)).name
    return name.decode(errors="replace").rstrip("\x00") if isinstance(name, bytes) else str(name)
