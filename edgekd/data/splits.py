"""Seeded, stratified carving of a validation split from train, and transformed views of splits."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


class TransformedSubset:
    """`base[indices]` with `transform` applied to the image; exposes `targets` like the base."""

    def __init__(self, base: Any, indices: Sequence[int], transform: Callable) -> None:
        self.base, self.indices, self.transform = base, list(indices), transform
        base_targets = base.targets
        self.targets = [int(base_targets[i]) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[self.indices[index]]
        return self.transform(image), label


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


def fraction_of(targets: Sequence[int], fraction: float, seed: int) -> list[int]:
    """A seeded stratified `fraction` of the indices (for data-efficiency runs)."""
    if fraction >= 1.0:
        return list(range(len(targets)))
    _, kept = stratified_split(targets, max(1, int(round(fraction * len(targets)))), seed + 1)
    return kept
