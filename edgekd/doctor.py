"""`edgekd doctor`: what this machine can do (versions, CUDA, TensorRT, onnxruntime providers)."""
from __future__ import annotations

import importlib
import platform


def _version(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception as err:  # noqa: BLE001 - any import failure is a finding, not a crash
        return f"not available ({type(err).__name__})"


def report() -> str:
    """A plain-text report, one finding per line."""
    from edgekd import __version__

    lines = [f"edgekd        {__version__}", f"python        {platform.python_version()} ({platform.machine()})"]
    for module in ("numpy", "PIL", "onnxruntime", "torch", "torchvision", "onnx", "gradio", "tensorrt"):
        lines.append(f"{module:<13} {_version(module)}")
    try:
        import onnxruntime

        lines.append(f"ort providers {', '.join(onnxruntime.get_available_providers())}")
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            lines.append(f"cuda          {torch.version.cuda}: {names}")
        else:
            lines.append(f"cuda          no GPU visible (torch built with CUDA {torch.version.cuda})")
        lines.append(f"cpu threads   {torch.get_num_threads()}")
    except ImportError:
        lines.append("cuda          unknown (torch not installed: pip install 'edgekd[train]')")
    return "\n".join(lines)
