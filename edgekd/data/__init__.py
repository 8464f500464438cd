"""Datasets (a registry) and `build_data`, which turns a data config into transformed splits.

Validation is carved from train (seeded, stratified) unless the dataset ships its own; model
and threshold selection use validation only, and the test split is only ever reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from edgekd.config import DataConfig
from edgekd.data import cifar, csv_list, imagefolder, shapes, tinyimagenet  # noqa: F401  (register datasets)
from edgekd.data.registry import DATASETS, RawSplits
from edgekd.data.splits import TransformedSubset
from edgekd.bundle.splits import fraction_of, validation_count, validation_split
from edgekd.data.batch_augment import PADDING, PaddedCropFlip
from edgekd.data.transforms import PRESETS, eval_transform, resolve_preset, train_transform, uint8_transform
from edgekd.errors import EdgekdError
from edgekd.bundle.preprocess import Preprocess, dataset_preprocess


@dataclass
class DataSplits:
    """Transformed train / val / test splits plus what export and the runtime need to know."""

    train: Any
    val: Any
    test: Any
    classes: Sequence[str]
    preprocess: Preprocess
    image_size: int
    # Where set, `train` yields uint8 images and this augments each batch (see edgekd.data.batch_augment).
    train_batch_augment: Optional[Callable[..., Any]] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.preprocess.std


def _check_val_size(val_size: float, n: int) -> None:
    if not 0 < validation_count(val_size, n) < n:
        raise EdgekdError(f"data.val_size={val_size} leaves no train or no validation images out of {n}")


def build_data(cfg: DataConfig, preprocess: Optional[Preprocess] = None) -> DataSplits:
    """Load the configured dataset and return its train / val / test splits, transformed with `preprocess`
    (a pretrained model's normalization, interpolation and crop), by default the dataset's own statistics."""
    raw: RawSplits = DATASETS.get(cfg.name)(cfg)
    size = cfg.image_size
    pre = preprocess or dataset_preprocess(tuple(raw.mean), tuple(raw.std), size)
    preset = resolve_preset(cfg.augment, size)
    PRESETS.get(preset)  # an unknown preset fails here, with the known ones
    batch_augment = PaddedCropFlip(PADDING[preset], pre.mean, pre.std) if preset in PADDING else None
    train_tf = uint8_transform(size, pre) if batch_augment else train_transform(preset, size, pre)
    eval_tf = eval_transform(size, pre)
    if raw.val is not None:
        train_idx, val = list(range(len(raw.train))), TransformedSubset(raw.val, range(len(raw.val)), eval_tf)
    else:
        _check_val_size(cfg.val_size, len(raw.train))
        train_idx, val_idx = validation_split(raw.train.targets, cfg.val_size, cfg.seed)
        val = TransformedSubset(raw.train, val_idx, eval_tf)
    if cfg.train_fraction < 1.0:
        kept = fraction_of([raw.train.targets[i] for i in train_idx], cfg.train_fraction, cfg.seed)
        train_idx = [train_idx[i] for i in kept]
    test_idx = fraction_of(raw.test.targets, cfg.test_fraction, cfg.seed)
    return DataSplits(
        train=TransformedSubset(raw.train, train_idx, train_tf),
        val=val,
        test=TransformedSubset(raw.test, test_idx, eval_tf),
        classes=list(raw.classes),
        preprocess=pre,
        image_size=size,
        train_batch_augment=batch_augment,
    )


__all__ = ["DATASETS", "DataSplits", "RawSplits", "build_data"]
