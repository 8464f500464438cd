"""The export formats, as one table: what each writes, which options it takes, which format it builds on,
and the plug-in file that does the work.

Each format is one module in this package with an `add(job: ExportJob) -> list[str]` that writes its
files into the bundle being built and enters them in the manifest. A format that `needs` another adds
to that one's bundle (every ONNX precision, and TensorRT, build on the FP32 `onnx` graphs), so the
exporter runs the chain `needs` first. The table itself imports nothing heavy: the CLI and a recipe's
`export:` section check a request against it (`check_request`) before torch is imported, and a format
or option that does not exist, or does not apply, is refused the same way, with the closest valid name.
Several formats can go into one bundle (`--format onnx-fp16,onnx-int8`): their chains are joined.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from edgekd.bundle.backends import MAX_BATCH
from edgekd.errors import EdgekdError
from edgekd.registry import closest


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str
    options: tuple[str, ...]
    defaults: dict[str, Any]
    plugin: str  # module of this package with `add(job)`
    needs: str | None = None  # the format this one adds to
    extends_bundles: bool = False  # may also add to an already exported bundle

    def add(self) -> Callable[..., list[str]]:
        """The plug-in's `add`, imported on first use (it may need torch)."""
        return importlib.import_module(f"{__name__}.{self.plugin}").add

    def chain(self) -> list["ExportFormat"]:
        """This format and those it needs, the one needing nothing first."""
        return [*(FORMATS[self.needs].chain() if self.needs else []), self]


_COMMON = ("out", "opset", "overwrite")
FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("onnx", "FP32 ONNX graphs per segment, per prefix and in full, parity-checked against PyTorch",
                     _COMMON, {"opset": 17}, "onnx_fp32"),
        ExportFormat("onnx-fp16", "the ONNX bundle plus FP16 graphs (FP32 inputs and outputs), with per-exit parity and "
                     "accuracy against FP32", _COMMON, {"opset": 17}, "onnx_fp16", needs="onnx"),
        ExportFormat("onnx-int8", "the ONNX bundle plus INT8 graphs (static QDQ, per-channel weights; symmetric by default, "
                     "as TensorRT reads them), with per-exit accuracy against FP32",
                     (*_COMMON, "calib_images", "int8_scheme", "max_int8_drop"),
                     {"opset": 17, "calib_images": 256, "int8_scheme": "symmetric"}, "onnx_int8", needs="onnx"),
        ExportFormat("tensorrt", "strongly typed TensorRT engines per segment, built from an ONNX bundle's FP16, INT8 or "
                     "FP32 graphs on the device that will run them", (*_COMMON, "precision", "max_batch"),
                     {"opset": 17, "max_batch": MAX_BATCH}, "tensorrt_engines", needs="onnx", extends_bundles=True),
    )
}
ALL_OPTIONS = sorted({o for f in FORMATS.values() for o in f.options})
INT8_SCHEMES = ("symmetric", "u8s8")


def format_names(fmt: str | Sequence[str]) -> list[str]:
    """One format name, several comma-separated ones, or a list of them, checked against the table."""
    requested = [f.strip() for f in (fmt.split(",") if isinstance(fmt, str) else fmt) if f.strip()]
    for name in requested or [""]:
        if name not in FORMATS:
            hint = closest(name, list(FORMATS))
            raise EdgekdError(f"unknown export format '{name}'" + (f"; did you mean '{hint}'?" if hint else "")
                              + f" Formats: {', '.join(FORMATS)}")
    return requested


def chain_of(requested: Sequence[str]) -> list[ExportFormat]:
    """Every format the requested ones need, each once, a format after those it needs."""
    steps: list[ExportFormat] = []
    for name in requested:
        steps += [step for step in FORMATS[name].chain() if step not in steps]
    return steps


def check_request(fmt: str | Sequence[str], options: dict[str, Any]) -> dict[str, Any]:
    """Validate the format(s) and their options (unset ones are None) and return the options with defaults filled."""
    requested = format_names(fmt)
    label = ", ".join(requested)
    steps = chain_of(requested)
    takes = sorted({o for step in steps for o in step.options})
    for key, value in options.items():
        if value is None or value is False:
            continue
        if key not in ALL_OPTIONS:
            hint = closest(key, ALL_OPTIONS)
            raise EdgekdError(f"unknown export option '{key}'" + (f"; did you mean '{hint}'?" if hint else "")
                              + f" Options of '{label}': {', '.join(takes)}")
        if key not in takes:
            owners = [f.name for f in FORMATS.values() if key in f.options]
            raise EdgekdError(f"option '{key}' does not apply to format '{label}' (it applies to: {', '.join(owners)}). "
                              f"Options of '{label}': {', '.join(takes)}")
    if len(requested) > 1 and any(FORMATS[name].extends_bundles for name in requested):
        raise EdgekdError(f"export {', '.join(n for n in requested if FORMATS[n].extends_bundles)} on its own, after the "
                          f"ONNX formats")
    resolved = {k: v for step in steps for k, v in step.defaults.items()}
    resolved.update({k: v for k, v in options.items() if v is not None and k in takes})
    if "calib_images" in resolved and resolved["calib_images"] < 1:
        raise EdgekdError(f"calib_images must be at least 1, got {resolved['calib_images']}")
    if "max_batch" in resolved and resolved["max_batch"] < 1:
        raise EdgekdError(f"max_batch must be at least 1, got {resolved['max_batch']}")
    if "opset" in resolved and not 13 <= resolved["opset"] <= 21:
        raise EdgekdError(f"opset {resolved['opset']} is outside the supported 13..21")
    if resolved.get("int8_scheme", "symmetric") not in INT8_SCHEMES:
        raise EdgekdError(f"int8_scheme must be one of {', '.join(INT8_SCHEMES)}, got '{resolved['int8_scheme']}'")
    if resolved.get("max_int8_drop") is not None and resolved["max_int8_drop"] < 0:
        raise EdgekdError(f"max_int8_drop is a number of accuracy points, at least 0; got {resolved['max_int8_drop']}")
    return resolved
