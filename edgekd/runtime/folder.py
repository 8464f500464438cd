"""Labelled images from a class-per-folder tree, without torch: what `edgekd calibrate` and
`edgekd bench` read.

Files are listed exactly as torchvision's ImageFolder lists them (classes sorted, files sorted per
folder, jpg/jpeg/png), so the validation split carved here with the run's seed and size is the one
training held out.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekd.bundle.manifest import ValidationRule
from edgekd.bundle.splits import validation_split
from edgekd.errors import BadInput

EXTENSIONS = (".jpg", ".jpeg", ".png")


def list_images(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """(paths, labels, class names) of `folder/<class>/**/<image>`."""
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder of class folders (<folder>/<class>/<image>.jpg)")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        for root, _, files in sorted(os.walk(folder / name, followlinks=True)):
            for file in sorted(files):
                if file.lower().endswith(EXTENSIONS):
                    paths.append(Path(root) / file)
                    labels.append(label)
    if not paths:
        raise BadInput(f"{folder} holds no jpg/png images in class folders")
    return paths, labels, classes


def split_images(root: Path, split: str, validation: ValidationRule) -> tuple[list[Path], np.ndarray, list[str]]:
    """The `val` or `test` images of an ImageFolder root (`train/`, optional `val/`, `test/`). Without
    `val/`, validation is carved from `train/` as the run did (`val_size` and `seed` from the manifest)."""
    if (root / split).is_dir():
        paths, labels, classes = list_images(root / split)
        return paths, np.asarray(labels), classes
    if split == "val" and (root / "train").is_dir():
        if validation.val_size is None or validation.seed is None:
            raise BadInput(f"{root} has no val/ folder, and the bundle does not record how validation was carved from train/")
        paths, labels, classes = list_images(root / "train")
        _, held = validation_split(labels, validation.val_size, validation.seed)
        return [paths[i] for i in held], np.asarray(labels)[held], classes
    raise BadInput(f"{root} has no {split}/ folder; pass an ImageFolder root holding train/ (and val/) and test/")
