"""Every recipe runs its smoke profile through the CLI; the CLI's list and doctor answer."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli, run_cli_here
from edgekd.config import list_recipes
from edgekd.recipe_loading import load_recipe


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")  # shared so that teachers are trained once and reused


def _own_image_settings(name: str, runs_dir, shared_cifar10) -> list[str]:
    """Recipes for your own images run their smoke profile on the shared CIFAR-10 images; a teacher held as a
    weight file takes the one the fine-tuning recipe's smoke run wrote (recipes run in name order)."""
    config = load_recipe(name, profile="smoke")
    if config.data.name != "imagefolder":
        return []
    settings = ["--set", f"data.root={shared_cifar10}"]
    for i, teacher in enumerate(config.teachers):
        if teacher.model.weights:
            written = runs_dir / Path(teacher.model.weights).relative_to("runs")
            settings += ["--set", f"teachers.{i}.model.weights={written}"]
    return settings


@pytest.mark.parametrize("name", list_recipes())
def test_smoke_profile_runs(name, runs_dir, request):
    settings = []
    if load_recipe(name, profile="smoke").data.name == "imagefolder":
        settings = _own_image_settings(name, runs_dir, request.getfixturevalue("shared_cifar10"))
    result = run_cli_here("recipe", name, "--profile", "smoke", "--runs-dir", str(runs_dir), "--export-dir", str(runs_dir / "export"),
                     *settings)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((runs_dir / f"{name}-smoke" / "results.json").read_text())
    assert all(0 <= a <= 100 for a in results["best"]["test"]["top1"])
    assert results["exits"][-1]["flops"] > 0


def test_teachers_are_cached_across_recipes(runs_dir):
    first = run_cli_here("recipe", "kd_resnet18", "--profile", "smoke", "--set", "train.epochs=1", "--runs-dir", str(runs_dir / "c"))
    second = run_cli_here("recipe", "kd_resnet18", "--profile", "smoke", "--set", "train.epochs=1", "--set", "train.seed=1",
                     "--runs-dir", str(runs_dir / "c"))
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "training teacher 1" in first.stdout and "cached in" in second.stdout
    assert len(list((runs_dir / "c" / "teachers").iterdir())) == 1


def test_list_and_doctor():
    models = run_cli_here("list", "models")
    assert models.returncode == 0 and "resnet152" in models.stdout and "mobilenetv2" in models.stdout
    assert "timm/<name>" in models.stdout and "torchvision/<name>" in models.stdout  # the model libraries, with counts
    for kind, expected in (("methods", "kd"), ("datasets", "shapes"), ("recipes", "kd_resnet18")):
        out = run_cli_here("list", kind)
        assert out.returncode == 0 and expected in out.stdout
    methods = run_cli_here("list", "methods").stdout.splitlines()
    assert all(len(line.split(None, 1)) == 2 for line in methods), methods  # every method has a description
    assert any(line.startswith("oto") and "One-to-One" in line for line in methods)
    doctor = run_cli_here("doctor")
    assert doctor.returncode == 0 and "onnxruntime" in doctor.stdout and "cuda" in doctor.stdout


def test_user_mistakes_get_one_line_not_a_traceback():
    result = run_cli("recipe", "kd_resnet81")  # once through the real entry point, the rest in this process
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for args in (["recipe", "kd_resnet18", "--set", "train.epoch=3"], ["recipe", "kd_resnet18", "--profile", "fast"]):
        result = run_cli_here(*args)
        assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_a_recipe_that_exports_refuses_to_train_without_onnxruntime(tmp_path):
    code = ("import sys; sys.modules['onnxruntime'] = None\n"  # any `import onnxruntime` now fails
            f"from edgekd.cli import main; sys.exit(main(['recipe', 'oto_resnet18', '--profile', 'smoke', '--runs-dir', {str(tmp_path)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: this recipe exports a bundle, and onnxruntime is not installed: pip install 'edgekd[cpu]'")
    assert list(tmp_path.iterdir()) == []  # refused before any training
