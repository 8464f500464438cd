"""`edgekd doctor`: what this machine can do (versions, CUDA, TensorRT, onnxruntime providers), and
the install problems that silently cost a device its GPU: no onnxruntime, two onnxruntime builds
shadowing each other, a TensorRT the environment cannot see, a TensorRT outside the supported majors,
and (with a bundle) a precision of the bundle that this machine cannot run. Torch-free."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import platform
import sys
from pathlib import Path
from typing import Iterable, Sequence

from edgekd.install_hints import ONNXRUNTIME_DISTRIBUTIONS, ONNXRUNTIME_MISSING, TENSORRT_MAJORS, require_onnxruntime

GPU_DEVICE_FILES = ("/dev/nvidia0", "/dev/nvhost-ctrl", "/dev/nvhost-ctrl-gpu")  # a CUDA GPU; a Jetson's GPU


def _version(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception as err:  # noqa: BLE001 - any import failure is a finding, not a crash
        return f"not available ({type(err).__name__})"


def installed_onnxruntime_builds() -> dict[str, str]:
    """Each installed distribution that provides the `onnxruntime` module, with its version."""
    builds = {}
    for name in ONNXRUNTIME_DISTRIBUTIONS:
        try:
            builds[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return builds


def onnxruntime_findings(builds: dict[str, str], importable: bool, providers: Sequence[str], gpu_present: bool) -> list[str]:
    """Problems with the onnxruntime install: none, two builds in one module, a GPU it cannot use."""
    if not importable:
        return [f"problem       {ONNXRUNTIME_MISSING}"]
    findings = []
    if len(builds) > 1:
        listed = " and ".join(f"{name} {version}" for name, version in builds.items())
        findings.append(f"problem       {listed} are both installed and write the same `onnxruntime` module: the one "
                        f"installed last wins (providers now: {', '.join(providers)}). Keep one: pip uninstall -y "
                        f"{' '.join(builds)}, then pip install 'edgekd[gpu]' (or 'edgekd[cpu]')")
    if gpu_present and "CUDAExecutionProvider" not in providers:
        findings.append("problem       an NVIDIA GPU is present but onnxruntime has no CUDA provider: the CPU build is "
                        "installed. Install onnxruntime-gpu (on a Jetson, NVIDIA's wheel for the JetPack) in its place")
    return findings


def system_site_dirs() -> list[Path]:
    """Where a system Python keeps packages that a virtual environment does not see (JetPack puts TensorRT's
    bindings in the first)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return [Path("/usr/lib/python3/dist-packages"), Path("/usr/lib") / version / "dist-packages",
            Path("/usr/local/lib") / version / "dist-packages"]


def tensorrt_findings(version: str | None, system_dirs: Iterable[Path]) -> list[str]:
    """TensorRT's version against the supported majors; or a system-wide TensorRT this environment cannot see."""
    supported = ", ".join(f"{major}.x" for major in TENSORRT_MAJORS)
    if version is None:
        hidden = [d for d in system_dirs if (d / "tensorrt").is_dir()]
        if hidden and sys.prefix != sys.base_prefix:
            return [f"problem       TensorRT is installed in {hidden[0]}, which this virtual environment does not see: "
                    f"create it with python3 -m venv --system-site-packages"]
        return []
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return [f"problem       TensorRT reports version {version!r}; edgekd's engines support TensorRT {supported}"]
    if major not in TENSORRT_MAJORS:
        return [f"problem       TensorRT {version} is outside the majors edgekd's engine builder supports ({supported}); "
                f"run the bundle's ONNX graphs instead (onnxruntime's CUDA or TensorRT provider)"]
    return []


def bundle_findings(bundle: Path, providers: Sequence[str], tensorrt_version: str | None) -> list[str]:
    """Each precision the bundle holds, on each backend: whether this machine can run it."""
    from edgekd.bundle import read_manifest
    from edgekd.bundle.backends import onnxruntime_backends

    manifest = read_manifest(bundle, verify=False)
    lines = []
    for precision in manifest.precision_names:
        runs = onnxruntime_backends(list(providers))
        if not providers:
            verdict = "cannot run here: needs onnxruntime (see above)"
        else:
            verdict = f"runs here on backend {', '.join(runs)}"
        lines.append(f"bundle {precision:<9} {verdict}")
    if manifest.tensorrt is not None:
        engines = f"TensorRT {manifest.tensorrt.version} engines ({manifest.tensorrt.precision})"
        if tensorrt_version is None:
            lines.append(f"bundle engines   {engines} cannot run here: needs the tensorrt Python package: pip install "
                         f"'edgekd[tensorrt]', or JetPack's (venv --system-site-packages)")
        else:
            lines.append(f"bundle engines   {engines} run on backend tensorrt-engines where TensorRT {manifest.tensorrt.version} "
                         f"and the GPU that built them are (TensorRT here: {tensorrt_version})")
    return lines


def report(bundle: Path | None = None) -> str:
    """A plain-text report, one finding per line; problems start with `problem`."""
    from edgekd import __version__

    lines = [f"edgekd        {__version__}", f"python        {platform.python_version()} ({platform.machine()})"]
    for module in ("numpy", "PIL", "onnxruntime", "torch", "torchvision", "onnx", "gradio", "tensorrt"):
        lines.append(f"{module:<13} {_version(module)}")
    builds = installed_onnxruntime_builds()
    lines.append(f"ort builds    {', '.join(f'{n} {v}' for n, v in builds.items()) or 'none installed as a package'}")
    providers: list[str] = []
    try:
        providers = list(require_onnxruntime().get_available_providers())
        importable = True
        lines.append(f"ort providers {', '.join(providers)}")
    except ModuleNotFoundError:
        importable = False
    except Exception as err:  # noqa: BLE001 - a broken install is a finding
        importable = True
        lines.append(f"problem       onnxruntime does not import ({type(err).__name__}: {err}); reinstall it")
    gpu_present = any(Path(p).exists() for p in GPU_DEVICE_FILES)
    lines.append(f"nvidia gpu    {'present' if gpu_present else 'none visible'}")
    lines += onnxruntime_findings(builds, importable, providers, gpu_present)
    tensorrt_version = None
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            tensorrt_version = str(getattr(importlib.import_module("tensorrt"), "__version__", "unknown"))
        except Exception as err:  # noqa: BLE001 - a broken install is a finding
            lines.append(f"problem       tensorrt is installed but does not import ({type(err).__name__}: {err})")
    lines += tensorrt_findings(tensorrt_version, system_site_dirs())
    try:
        import torch

        if torch.cuda.is_available():
            names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            lines.append(f"cuda          {torch.version.cuda}: {names}")
        else:
            lines.append(f"cuda          no GPU visible (torch built with CUDA {torch.version.cuda})")
        lines.append(f"cpu threads   {torch.get_num_threads()}")
    except ImportError:
        lines.append("cuda          unknown to torch (torch not installed: pip install 'edgekd[train,cpu]')")
    if bundle is not None:
        lines += bundle_findings(bundle, providers, tensorrt_version)
    return "\n".join(lines)
