"""What runs on the device: bundles through onnxruntime with confidence-based early exits.

Imports no torch (a test enforces it): `pip install edgekd` (numpy, onnx, onnxruntime, Pillow) is all a
Jetson or a CPU box needs.
"""
from edgekd.runtime.model import EarlyExitModel, Prediction
from edgekd.runtime.policies import POLICIES

__all__ = ["EarlyExitModel", "Prediction", "POLICIES"]
