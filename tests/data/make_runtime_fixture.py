"""Regenerate the runtime tests' fixture: a tiny 4-exit bundle and a few labelled images.

The runtime's tests must run where torch is not installed (the device install, and CI's Python 3.10
check), so they read this committed bundle instead of exporting one. Run from the repository root
with the training extra installed:

    python tests/data/make_runtime_fixture.py
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgekd.config import resolve
from edgekd.data.shapes import CLASSES, ShapesDataset
from edgekd.engine.run import train_and_evaluate
from edgekd.export.exporter import export

HERE = Path(__file__).resolve().parent
BUNDLE, IMAGES = HERE / "tiny_bundle", HERE / "shapes_images"
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


def main() -> None:
    with tempfile.TemporaryDirectory() as runs:
        run_dir = Path(runs) / "tiny"
        train_and_evaluate(resolve(RECIPE), run_dir, runs_dir=Path(runs))
        export(run_dir, "onnx-int8", out=BUNDLE, overwrite=True, calib_images=64)
    write_images()


if __name__ == "__main__":
    main()
