"""The export formats, as one table: what each one writes and which options it takes.

The CLI and a recipe's `export:` section both go through `check_request`, so a format or option
that does not exist, or does not apply to the chosen format, is refused the same way, with the
closest valid name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.registry import closest


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str
    options: tuple[str, ...]
    defaults: dict[str, Any]


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("onnx", "FP32 ONNX graphs per segment, per prefix and in full, parity-checked against PyTorch",
                     ("out", "opset", "overwrite"), {"opset": 17}),
        ExportFormat("onnx-int8", "the ONNX bundle plus INT8 graphs (onnxruntime static QDQ, per-channel), with INT8 vs FP32 accuracy",
                     ("out", "opset", "overwrite", "calib_images"), {"opset": 17, "calib_images": 256}),
        ExportFormat("tensorrt", "TensorRT engines per segment built from an ONNX bundle, on the device that will run them",
                     ("out", "opset", "overwrite", "fp16", "int8", "calib_images"), {"opset": 17, "fp16": True, "int8": False,
                                                                                      "calib_images": 256}),
    )
}
ALL_OPTIONS = sorted({o for f in FORMATS.values() for o in f.options})


def check_request(fmt: str, options: dict[str, Any]) -> dict[str, Any]:
    """Validate a format and its options (unset ones are None) and return them with defaults filled."""
    if fmt not in FORMATS:
        hint = closest(fmt, list(FORMATS))
        raise EdgekdError(f"unknown export format '{fmt}'" + (f"; did you mean '{hint}'?" if hint else "")
                          + f" Formats: {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    for key, value in options.items():
        if value is None or value is False:
            continue
        if key not in ALL_OPTIONS:
            hint = closest(key, ALL_OPTIONS)
            raise EdgekdError(f"unknown export option '{key}'" + (f"; did you mean '{hint}'?" if hint else "")
                              + f" Options of '{fmt}': {', '.join(spec.options)}")
        if key not in spec.options:
            takes = [f.name for f in FORMATS.values() if key in f.options]
            raise EdgekdError(f"option '{key}' does not apply to format '{fmt}' (it applies to: {', '.join(takes)}). "
                              f"Options of '{fmt}': {', '.join(spec.options)}")
    resolved = dict(spec.defaults)
    resolved.update({k: v for k, v in options.items() if v is not None and k in spec.options})
    if "calib_images" in resolved and resolved["calib_images"] < 1:
        raise EdgekdError(f"calib_images must be at least 1, got {resolved['calib_images']}")
    if "opset" in resolved and not 13 <= resolved["opset"] <= 21:
        raise EdgekdError(f"opset {resolved['opset']} is outside the supported 13..21")
    return resolved
