"""The runtime tests' fixture: a tiny trained 4-exit bundle and a few labelled images.

Built once (about a minute on CPU) into test-artifacts/runtime-fixture by the first test session
that has torch, and reused from there. The runtime's tests also run where torch is not installed
(CI's Python 3.10 check, after its main run built the fixture); there they only read it. To build
it by hand: `python tests/runtime_fixture.py`.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgekd.config import resolve
from edgekd.data.shapes import CLASSES, ShapesDataset
from edgekd.engine.run import train_and_evaluate
from edgekd.export.exporter import export

FIXTURE = Path(__file__).resolve().parents[1] / "test-artifacts" / "runtime-fixture"
BUNDLE, IMAGES = FIXTURE / "tiny_bundle", FIXTURE / "shapes_images"
RECIPE = {
    "name": "tiny", "data": {"name": "shapes", "train_size": 4000, "test_size": 200, "val_size": 200, "workers": 0},
    "student": {"name": "resnet18", "exits": "all", "width": 0.0625},
    "method": {"name": "ce"},
    "train": {"epochs": 10, "batch_size": 64, "lr": 0.1, "schedule": "cosine", "device": "cpu"},
}


def write_images(per_split: int = 60) -> None:
    """val/ and test/ PNGs from shapes' test stream (never seen in training), in class folders."""
    shutil.rmtree(IMAGES, ignore_errors=True)
    data = ShapesDataset("test", 2 * per_split, seed=7)
    for i in range(len(data)):
        image, label = data[i]
        folder = IMAGES / ("val" if i < per_split else "test") / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:04d}.png")


def build() -> None:
    """Train, export and write the images; the bundle appears only once complete (export is atomic)."""
    with tempfile.TemporaryDirectory() as runs:
        run_dir = Path(runs) / "tiny"
        train_and_evaluate(resolve(RECIPE), run_dir, runs_dir=Path(runs), log=lambda message: None)
        write_images()
        export(run_dir, "onnx-fp16,onnx-int8", out=BUNDLE, overwrite=True, calib_images=64, log=lambda message: None)


if __name__ == "__main__":
    build()
