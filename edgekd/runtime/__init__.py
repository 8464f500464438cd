"""What runs on the device: bundles with confidence-based early exits, on a backend chosen by name
(onnxruntime's CPU, CUDA or TensorRT provider, or native TensorRT engines; see `backends`).

Imports neither torch nor `edgekd.export` (a test enforces both); bundles are read through `edgekd.bundle`.
`pip install 'edgekd[cpu]'` (numpy, onnx, Pillow, pydantic, onnxruntime) is all a CPU box needs; a
Jetson or CUDA machine keeps its own onnxruntime-gpu build (`edgekd[gpu]`, or NVIDIA's wheel for the
JetPack). Without any onnxruntime, importing this package says what to install.
"""
from edgekd.install_hints import require_onnxruntime

require_onnxruntime()

from edgekd.runtime.backends import BACKENDS  # noqa: E402 (after the check that names the fix)
from edgekd.runtime.model import EarlyExitModel, Prediction  # noqa: E402
from edgekd.runtime.policies import POLICIES  # noqa: E402

__all__ = ["BACKENDS", "EarlyExitModel", "Prediction", "POLICIES"]
