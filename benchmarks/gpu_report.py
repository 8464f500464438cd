"""The two halves of `benchmarks/gpu_check.sh` that are Python: whether a CUDA GPU is here at all, and
the report written from what the GPU tests recorded.

    python benchmarks/gpu_report.py detect            # exit 0 and the GPU's name, or exit 1 and why not
    python benchmarks/gpu_report.py render FIGURES.jsonl JUNIT.xml OUT.md
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def gpu() -> tuple[str | None, str]:
    """(the GPU's name, how it was seen) or (None, why none was): cuda-python, then PyTorch, then nvidia-smi."""
    if importlib.util.find_spec("cuda") is not None:
        try:
            from edgekd.cuda_runtime import gpu_name

            return gpu_name(), "cuda-python"
        except Exception as err:  # noqa: BLE001 - any failure here means: not through cuda-python
            reason = "cuda-python sees no CUDA device" if "no CUDA GPU" in str(err) else f"cuda-python: {err}"
    else:
        reason = "cuda-python is not installed"
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0), "PyTorch"
        reason += "; PyTorch sees no CUDA device"
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
        if listed.startswith("GPU"):
            return listed.splitlines()[0], "nvidia-smi"
    return None, reason + "; no nvidia-smi lists a GPU"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for module in ("torch", "onnxruntime", "tensorrt", "cuda", "numpy", "edgekd"):
        if importlib.util.find_spec(module) is None:
            continue
        try:
            found[module] = str(getattr(importlib.import_module(module), "__version__", "installed"))
        except Exception as err:  # noqa: BLE001 - a broken install is itself worth reporting
            found[module] = f"does not import ({type(err).__name__})"
    return found


def render(figures: Path, junit: Path, out: Path) -> None:
    """One markdown report: the machine, every GPU test's outcome (with a skip's reason), the figures."""
    name, seen_by = gpu()
    lines = ["# edgekd GPU check", "", f"- GPU: {name} (seen by {seen_by})"]
    lines += [f"- {module}: {version}" for module, version in versions().items()]
    lines += ["", "| test | outcome | detail |", "|---|---|---|"]
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, detail = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[kind]
                detail = (element.get("message") or "").replace("|", "/").splitlines()[0][:200] if element.get("message") else ""
        lines.append(f"| {case.get('name')} | {outcome} | {detail} |")
    lines += ["", "## Figures", ""]
    records = [json.loads(line) for line in figures.read_text().splitlines() if line.strip()] if figures.is_file() else []
    for record in records:
        check = record.pop("check")
        lines.append(f"- **{check}**: " + ", ".join(f"{key} {value}" for key, value in record.items()))
    if not records:
        lines.append("(no figures: every GPU test failed or skipped)")
    out.write_text("\n".join(lines) + "\n")


def main() -> int:
    if sys.argv[1:2] == ["detect"]:
        name, how = gpu()
        print(f"{name} (seen by {how})" if name else how)
        return 0 if name else 1
    if sys.argv[1:2] == ["render"] and len(sys.argv) == 5:
        render(*(Path(a) for a in sys.argv[2:]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
