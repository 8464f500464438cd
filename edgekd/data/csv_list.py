"""`csv`: images listed in a CSV file instead of sorted into class folders.

`data.root` is the CSV file: a header row naming `path` and `label` columns, and optionally `split`
(`train`, `val` or `test`; empty means train). Paths are relative to the CSV file's folder, or absolute.
Labels are class names; the classes are the sorted distinct labels (numerically when every label is a
number), as ImageFolder sorts its class folders. Without `test` rows, a stratified, seeded test split the
size of `data.val_size` is carved from the training rows; without `val` rows, validation is carved as
for every dataset.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from torchvision.datasets.folder import IMG_EXTENSIONS, pil_loader

from edgekd.config import DataConfig
from edgekd.data.registry import DATASETS, RawSplits
from edgekd.errors import EdgekdError
from edgekd.bundle.splits import validation_count, validation_split

SPLITS = ("train", "val", "test")


class ImageList:
    """(PIL image, label) for listed files; `targets` as ImageFolder has them."""

    def __init__(self, paths: list[Path], targets: list[int]) -> None:
        self.paths, self.targets = paths, targets

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return pil_loader(str(self.paths[index])), self.targets[index]

    def subset(self, indices: list[int]) -> "ImageList":
        return ImageList([self.paths[i] for i in indices], [self.targets[i] for i in indices])


def _sorted_classes(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The CSV's rows, after checking its columns."""
    if not path.is_file():
        raise EdgekdError(f"csv: {path} does not exist; data.root must be the CSV file (columns path,label[,split])")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "path" not in columns or "label" not in columns:
            raise EdgekdError(f"csv: {path} needs a header row with 'path' and 'label' columns (and optionally 'split'), "
                              f"found {columns or 'no header'}")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    if not rows:
        raise EdgekdError(f"csv: {path} lists no images")
    return rows


@DATASETS.register("csv")
def csv_dataset(cfg: DataConfig) -> RawSplits:
    """Images and labels listed in the CSV file at data.root."""
    path = Path(cfg.root).expanduser()
    rows = read_rows(path)
    classes = _sorted_classes({row["label"] for row in rows})
    index = {name: i for i, name in enumerate(classes)}
    split_paths: dict[str, list[Path]] = {s: [] for s in SPLITS}
    split_targets: dict[str, list[int]] = {s: [] for s in SPLITS}
    for line, row in enumerate(rows, start=2):
        split = row.get("split") or "train"
        if split not in SPLITS:
            raise EdgekdError(f"csv: {path} line {line}: split '{split}' is not one of {', '.join(SPLITS)}")
        if not row["path"] or not row["label"]:
            raise EdgekdError(f"csv: {path} line {line}: empty path or label")
        image = Path(row["path"]).expanduser()
        image = image if image.is_absolute() else path.parent / image
        if image.suffix.lower() not in IMG_EXTENSIONS:
            raise EdgekdError(f"csv: {path} line {line}: {row['path']} is not an image file ({', '.join(IMG_EXTENSIONS)})")
        if not image.is_file():
            raise EdgekdError(f"csv: {path} line {line}: {image} does not exist (paths are relative to the CSV file)")
        split_paths[split].append(image)
        split_targets[split].append(index[row["label"]])
    train = ImageList(split_paths["train"], split_targets["train"])
    if not len(train):
        raise EdgekdError(f"csv: {path} has no training rows")
    if split_targets["test"]:
        test = ImageList(split_paths["test"], split_targets["test"])
    else:
        if not 0 < validation_count(cfg.val_size, len(train)) < len(train):
            raise EdgekdError(f"csv: {path} has no test rows and data.val_size={cfg.val_size} cannot carve a test split "
                              f"from {len(train)} images")
        kept, held = validation_split(train.targets, cfg.val_size, cfg.seed + 1)
        train, test = train.subset(kept), train.subset(held)
    val = ImageList(split_paths["val"], split_targets["val"]) if split_targets["val"] else None
    return RawSplits(train=train, test=test, val=val, classes=classes)
