"""Teacher logits computed once, on fixed augmented views, instead of a teacher forward pass every step.

A frozen teacher gives the same logits for the same image every time it sees it, so when a method
reads only the teachers' logits (kd, dkd, mskd, oto), training can fix `views` augmented versions of
each training image (a padded crop and a flip drawn once per image and view, see
`edgekd.data.batch_augment`), run the teachers over them once, and in every epoch hand each image to
the student as one of its views, drawn per epoch, with the teachers' logits of that view. The
teacher then costs `views` forward passes over the training set instead of one per epoch. The
student sees `views` augmentations of each image instead of a fresh one every epoch: the trade of
FKD (Shen & Xing, 2021), whose cached region labels this follows.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from edgekd.data.batch_augment import PaddedCropFlip
from edgekd.errors import EdgekdError
from edgekd.models import ExitOutputs, MultiExitNet

MAX_CACHE_BYTES = 2 * 2**30


def cache_refusal(method: type, batch_augmented: bool, progressive_resize: bool) -> str | None:
    """Why `train.teacher_cache_views` cannot serve a run of `method` (a Method class), or None: the one
    check, made when a recipe is validated (before any teacher trains) and by the trainer."""
    fix = "set train.teacher_cache_views=0 to run the teachers on every batch"
    if method.reads_teacher_features:
        return f"train.teacher_cache_views: method '{method.__name__}' reads the teachers' features, and only logits are cached; {fix}"
    if not batch_augmented:
        return f"train.teacher_cache_views needs the batched augmentation of the cifar or tiny preset (data.augment); {fix}"
    if progressive_resize:
        return (f"train.teacher_cache_views caches full-size views, so it cannot go with train.progressive_resize; "
                f"drop one of them, or {fix}")
    return None


class IndexedDataset:
    """(image, label, index) of `base`, so a batch knows which cached views it holds."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        image, label = self.base[index]
        return image, label, index


class TeacherLogitCache:
    """Every teacher's logits at every exit for `views` fixed views of each training image."""

    def __init__(self, teachers: Sequence[MultiExitNet], dataset: Any, augment: PaddedCropFlip, views: int, *,
                 seed: int, batch_size: int, device: torch.device) -> None:
        exits = sum(t.num_exits for t in teachers)
        classes = max(t.num_classes for t in teachers)
        needed = 4 * views * len(dataset) * exits * classes
        if needed > MAX_CACHE_BYTES:
            raise EdgekdError(f"train.teacher_cache_views={views} would hold {needed / 2**30:.1f} GiB of teacher logits "
                              f"({len(dataset)} images x {exits} exits x {classes} classes); use fewer views, or 0 to "
                              f"run the teachers on every batch")
        self.augment, self.views, self.device = augment, views, device
        generator = torch.Generator().manual_seed(seed * 100_003 + 17)
        self.offsets = augment.draw(views * len(dataset), generator)  # view v of image i: row v * N + i
        self.logits: list[list[Tensor]] = [[torch.empty(views * len(dataset), t.num_classes) for _ in range(t.num_exits)]
                                           for t in teachers]
        loader = DataLoader(IndexedDataset(dataset), batch_size)
        with torch.no_grad():
            for view in range(views):
                for images, _, index in loader:
                    rows = view * len(dataset) + index
                    batch = augment.apply(images.to(device), *(o[rows] for o in self.offsets))
                    for store, teacher in zip(self.logits, teachers):
                        for per_exit, z in zip(store, teacher(batch).logits):
                            per_exit[rows] = z.float().cpu()
        self.size = len(dataset)

    def batch(self, images: Tensor, index: Tensor, generator: torch.Generator) -> tuple[Tensor, list[ExitOutputs]]:
        """The student's augmented batch (each image as one of its views, drawn from `generator`) and the
        teachers' outputs for exactly those views."""
        view = torch.randint(0, self.views, (len(index),), generator=generator)
        rows = view * self.size + index
        augmented = self.augment.apply(images, *(o[rows] for o in self.offsets))
        outs = [ExitOutputs(logits=[z[rows].to(self.device) for z in store], features=[]) for store in self.logits]
        return augmented, outs

    def stand_in(self, batch: int) -> list[ExitOutputs]:
        """Teacher outputs of the cached shapes for `batch` images (random values), for timing a step."""
        return [ExitOutputs(logits=[torch.randn(batch, z.shape[1], device=self.device) for z in store], features=[])
                for store in self.logits]
