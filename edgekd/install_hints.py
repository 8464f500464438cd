"""What to install when a dependency is missing: one line each, shared by the CLI, the runtime and
`edgekd doctor` (torch-free, so the device runtime can use it)."""
from __future__ import annotations

from types import ModuleType

TRAIN_EXTRA_HINT = "this command needs the training extra: pip install 'edgekd[train,cpu]'"
# onnxruntime is not a base dependency: its CPU and GPU builds share the module name, so a base install
# that pulled in the CPU build would shadow the GPU build a Jetson or CUDA machine already has.
ONNXRUNTIME_MISSING = (
    "onnxruntime is not installed: pip install 'edgekd[cpu]' for the CPU build or 'edgekd[gpu]' for onnxruntime-gpu "
    "(CUDA and TensorRT providers); on a Jetson, install the onnxruntime-gpu wheel for your JetPack (README: On the device)"
)
# The distributions that install the `onnxruntime` module (each one replaces the others' files).
ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                             "onnxruntime-qnn", "onnxruntime-training")
# The TensorRT majors the engine builder supports (the `tensorrt` extra's bound).
TENSORRT_MAJORS = (10, 11)


def require_onnxruntime() -> ModuleType:
    """The onnxruntime module, or a ModuleNotFoundError whose message says what to install."""
    try:
        import onnxruntime
    except ModuleNotFoundError as err:
        if err.name != "onnxruntime":
            raise
        raise ModuleNotFoundError(ONNXRUNTIME_MISSING, name="onnxruntime") from None
    return onnxruntime
