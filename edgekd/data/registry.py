"""The dataset registry: names -> builders `(DataConfig) -> RawSplits`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from edgekd.registry import Registry

DATASETS: Registry = Registry("dataset")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class RawSplits:
    """Untransformed splits of a dataset; items are (PIL image, label) and each split has `targets`.

    `val` is set only when the dataset ships its own validation split; otherwise one is carved
    from `train`.
    """

    train: Any
    test: Any
    classes: Sequence[str]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    val: Any = None
