"""What runs on the device: bundles through onnxruntime with confidence-based early exits.

Imports no torch (a test enforces it): `pip install 'edgekd[cpu]'` (numpy, onnx, Pillow, onnxruntime) is
all a CPU box needs; a Jetson or CUDA machine keeps its own onnxruntime-gpu build (`edgekd[gpu]`, or
NVIDIA's wheel for the JetPack). Without any onnxruntime, importing this package says what to install.
"""
from edgekd.install_hints import require_onnxruntime

require_onnxruntime()

from edgekd.runtime.model import EarlyExitModel, Prediction  # noqa: E402 (after the check that names the fix)
from edgekd.runtime.policies import POLICIES  # noqa: E402

__all__ = ["EarlyExitModel", "Prediction", "POLICIES"]
