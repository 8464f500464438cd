"""Tiny ImageNet (200 classes, 64 px) in its published layout `tiny-imagenet-200/`.

The official test split has no labels, so the labelled official `val/` (read through
`val/val_annotations.txt`) serves as the test split and validation is carved from train.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from edgekd.config import DataConfig
from edgekd.data.registry import DATASETS, RawSplits
from edgekd.errors import EdgekdError

FOLDER = "tiny-imagenet-200"


class LabelledFiles:
    """(path, label) pairs loaded as RGB PIL images."""

    def __init__(self, samples: list[tuple[Path, int]]) -> None:
        self.samples = samples
        self.targets = [label for _, label in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            return image.convert("RGB"), label


def _class_names(root: Path, wnids: list[str]) -> list[str]:
    words_file = root / "words.txt"
    if not words_file.is_file():
        return wnids
    words = dict(line.split("\t", 1) for line in words_file.read_text().splitlines() if "\t" in line)
    return [words.get(w, w).split(",")[0].strip() for w in wnids]


@DATASETS.register("tinyimagenet")
def tinyimagenet(cfg: DataConfig) -> RawSplits:
    """Tiny ImageNet from data.root/tiny-imagenet-200 (wnids.txt, train/<wnid>/images, val/)."""
    root = Path(cfg.root).expanduser() / FOLDER
    annotations = root / "val" / "val_annotations.txt"
    if not (root / "wnids.txt").is_file() or not annotations.is_file():
        raise EdgekdError(
            f"tinyimagenet not found at {root}: expected wnids.txt, train/<wnid>/images/ and "
            f"val/val_annotations.txt. Extract tiny-imagenet-200.zip into data.root (--set data.root=PATH)"
        )
    wnids = (root / "wnids.txt").read_text().split()
    index = {w: i for i, w in enumerate(wnids)}
    train = [(p, index[w]) for w in wnids for p in sorted((root / "train" / w / "images").glob("*.JPEG"))]
    val = []
    for line in annotations.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1] in index:
            val.append((root / "val" / "images" / fields[0], index[fields[1]]))
    if not train or not val:
        raise EdgekdError(f"tinyimagenet at {root} has {len(train)} train and {len(val)} val images; is it fully extracted?")
    return RawSplits(train=LabelledFiles(train), test=LabelledFiles(val), classes=_class_names(root, wnids))
