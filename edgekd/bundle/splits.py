"""How validation is carved from a training split (numpy only), written once.

Training holds validation out of train with these functions, and the runtime carves the same images
again from the dataset's folder when it calibrates exit thresholds, from the `validation` rule the
manifest records.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def validation_count(val_size: float, total: int) -> int:
    """How many of `total` images `val_size` holds out: a fraction below 1, a count from 1 up."""
    return int(round(val_size * total)) if val_size < 1 else int(val_size)


def stratified_split(targets: Sequence[int], size: int, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (rest, held_out) with `size` held-out samples spread evenly over classes."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(targets)
    order = rng.permutation(len(labels))
    # Each class gives its proportional share; rounding is then topped up or trimmed to `size`.
    by_class = [order[labels[order] == c] for c in np.unique(labels)]
    fraction = size / len(labels)
    held = [idx[: int(round(fraction * len(idx)))] for idx in by_class]
    held_out = np.concatenate(held)
    shortfall = size - len(held_out)
    if shortfall > 0:
        remaining = np.setdiff1d(order, held_out, assume_unique=True)
        held_out = np.concatenate([held_out, rng.permutation(remaining)[:shortfall]])
    held_out = np.sort(held_out[:size])
    rest = np.setdiff1d(np.arange(len(labels)), held_out, assume_unique=True)
    return rest.tolist(), held_out.tolist()


def validation_split(targets: Sequence[int], val_size: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices of a training split, as a run with `val_size` and `seed` carved them."""
    return stratified_split(targets, validation_count(val_size, len(targets)), seed)


def fraction_of(targets: Sequence[int], fraction: float, seed: int) -> list[int]:
    """A seeded stratified `fraction` of the indices (for data-efficiency runs)."""
    if fraction >= 1.0:
        return list(range(len(targets)))
    _, kept = stratified_split(targets, max(1, int(round(fraction * len(targets)))), seed + 1)
    return kept
