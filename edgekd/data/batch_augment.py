"""Augmentation of whole batches in the training process instead of image by image in DataLoader workers.

torchvision's per-image pipeline costs about a millisecond an image on CPU: on two cores, a worker
doing it takes a core share from the training step, and doing it inline adds it to every step. The
padded random crop, the horizontal flip and the normalization of the `cifar` and `tiny` presets are
the same few tensor operations on a whole batch (well under a millisecond for 64 CIFAR images), so
for those presets the dataset yields uint8 images and the trainer augments each batch with a seeded
generator. The distribution is the per-image one: each image gets its own offsets and flip, padding
is black (the fill of `v2.RandomCrop`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

PADDING = {"cifar": 4, "tiny": 8}  # the presets this replaces, and their padding


class PaddedCropFlip:
    """Random crop of a zero-padded batch, random horizontal flip, then [0, 1] scaling and normalization."""

    def __init__(self, padding: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.padding = padding
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """`images`: uint8 (N, C, H, W); float32 normalized images of the same shape, each with its own draw."""
        return self.apply(images, *self.draw(len(images), generator))

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Vertical and horizontal offsets into the padded image, and whether to flip, for `n` images."""
        span = 2 * self.padding + 1
        dy = torch.randint(0, span, (n,), generator=generator)
        dx = torch.randint(0, span, (n,), generator=generator)
        return dy, dx, torch.rand(n, generator=generator) < 0.5

    def apply(self, images: Tensor, dy: Tensor, dx: Tensor, flip: Tensor) -> Tensor:
        """The crops at offsets (`dy`, `dx`) of the zero-padded `images`, flipped where `flip`, normalized."""
        n, _, h, w = images.shape
        p = self.padding
        padded = F.pad(images, (p, p, p, p))
        rows = (dy[:, None] + torch.arange(h)).to(images.device)  # (N, H)
        cols = dx[:, None] + torch.arange(w)
        cols = torch.where(flip[:, None], cols.flip(1), cols).to(images.device)  # (N, W), reversed where flipped
        batch = torch.arange(n, device=images.device)[:, None, None]
        crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
        crops = crops.permute(0, 3, 1, 2).float().div_(255)
        return crops.sub_(self.mean.to(images.device)).div_(self.std.to(images.device)).contiguous()
