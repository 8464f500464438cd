"""onnxruntime is an extra, not a base dependency (its CPU build would shadow a Jetson's GPU build):
without it the runtime and the CLI say what to install, and `edgekd doctor` names the install problems
that cost a device its GPU. Torch-free: these run in the runtime's Python 3.10 environment too."""
import os
import subprocess
import sys

from edgekd.doctor import onnxruntime_findings, tensorrt_findings
from edgekd.install_hints import ONNXRUNTIME_MISSING

HIDE_ONNXRUNTIME = "import sys; sys.modules['onnxruntime'] = None\n"  # any `import onnxruntime` now fails


def _python(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, **kw)


def test_without_onnxruntime_the_runtime_and_the_cli_name_the_fix(runtime_fixture):
    imported = _python(HIDE_ONNXRUNTIME + "import edgekd.runtime")
    assert imported.returncode == 1
    assert imported.stderr.strip().splitlines()[-1] == f"ModuleNotFoundError: {ONNXRUNTIME_MISSING}"
    assert "pip install 'edgekd[cpu]'" in ONNXRUNTIME_MISSING and "'edgekd[gpu]'" in ONNXRUNTIME_MISSING

    image = next((runtime_fixture.parent / "shapes_images" / "test").rglob("*.png"))
    cli = _python(HIDE_ONNXRUNTIME + f"from edgekd.cli import main; sys.exit(main(['predict', {str(runtime_fixture)!r}, {str(image)!r}]))")
    assert cli.returncode == 2 and cli.stderr == f"error: {ONNXRUNTIME_MISSING}\n" and cli.stdout == ""

    doctor = _python(HIDE_ONNXRUNTIME + f"from edgekd.cli import main; sys.exit(main(['doctor', '--bundle', {str(runtime_fixture)!r}]))")
    assert doctor.returncode == 0, doctor.stderr
    assert f"problem       {ONNXRUNTIME_MISSING}" in doctor.stdout.splitlines()
    assert "bundle fp32      cannot run here: needs onnxruntime (see above)" in doctor.stdout.splitlines()


def test_doctor_reports_a_bundle_that_runs_here(runtime_fixture):
    doctor = _python(f"from edgekd.cli import main; import sys; sys.exit(main(['doctor', '--bundle', {str(runtime_fixture)!r}]))")
    assert doctor.returncode == 0, doctor.stderr
    lines = doctor.stdout.splitlines()
    for precision in ("fp32", "fp16", "int8"):
        assert f"bundle {precision:<9} runs here on backend cpu" in lines, lines
    assert not any(line.startswith("problem") for line in lines), lines


def test_doctor_names_two_onnxruntime_builds_in_one_module(tmp_path):
    # A second distribution that installs the `onnxruntime` module, as `pip install edgekd` beside a Jetson's
    # onnxruntime-gpu used to leave: its metadata on the path is what `pip list` and doctor see.
    info = tmp_path / "onnxruntime_gpu-1.20.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.20.0\n")
    doctor = _python("from edgekd.cli import main; import sys; sys.exit(main(['doctor']))",
                     env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert doctor.returncode == 0, doctor.stderr
    problem = next(line for line in doctor.stdout.splitlines() if line.startswith("problem"))
    assert "onnxruntime-gpu 1.20.0 are both installed" in problem and problem.startswith("problem       onnxruntime ")
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in problem


def test_doctor_names_a_gpu_that_onnxruntime_cannot_use():
    found = onnxruntime_findings({"onnxruntime": "1.32.0"}, True, ["CPUExecutionProvider"], gpu_present=True)
    assert len(found) == 1 and "no CUDA provider: the CPU build is installed" in found[0]
    assert onnxruntime_findings({"onnxruntime-gpu": "1.20.0"}, True, ["CUDAExecutionProvider", "CPUExecutionProvider"], True) == []


def test_doctor_checks_tensorrt_against_the_supported_majors_and_the_system_site(tmp_path, monkeypatch):
    assert tensorrt_findings("10.3.0", []) == [] and tensorrt_findings("11.4.1", []) == []
    [outside] = tensorrt_findings("12.0.0", [])
    assert "TensorRT 12.0.0 is outside the majors" in outside and "10.x, 11.x" in outside
    (tmp_path / "tensorrt").mkdir()  # JetPack's bindings in the system site-packages
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))  # inside a virtual environment
    [hidden] = tensorrt_findings(None, [tmp_path])
    assert str(tmp_path) in hidden and "python3 -m venv --system-site-packages" in hidden
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)  # the system Python itself sees it
    assert tensorrt_findings(None, [tmp_path]) == []
