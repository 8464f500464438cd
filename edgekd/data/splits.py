"""Transformed views of dataset splits."""
from __future__ import annotations

from typing import Any, Callable, Sequence


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
