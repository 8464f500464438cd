"""A short run on real CIFAR-10 images through `imagefolder` must beat chance (10%) clearly."""
import json

from conftest import run_cli


def test_short_run_on_shared_cifar10_beats_chance(shared_cifar10, tmp_path):
    result = run_cli(
        "recipe", "ce_resnet18", "--profile", "smoke", "--runs-dir", str(tmp_path),
        "--set", "data.name=imagefolder", "--set", f"data.root={shared_cifar10}", "--set", "data.val_size=1000",
        "--set", "data.train_fraction=0.25", "--set", "train.epochs=3", "--set", "train.lr=0.05",
        "--set", "train.schedule=cosine", "--set", "student.width=0.25", "--set", "data.workers=0", timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "ce_resnet18-smoke" / "results.json").read_text())
    test = results["best"]["test"]
    assert test["images"] == 5000
    assert test["top1"][-1] > 35.0, test  # chance is 10%
    assert test["ensemble_top1"] > 35.0, test
