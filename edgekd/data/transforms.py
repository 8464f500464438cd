"""Transform presets by resolution; `auto` picks one from the image size.

- `cifar` (<= 32 px): random crop with 4 px padding + horizontal flip.
- `tiny` (<= 64 px): random crop with 8 px padding + horizontal flip.
- `imagenet` (larger): random resized crop + flip; evaluation resizes to 8/7 and centre-crops.
- `none`: resize and normalize only (also what every preset does at evaluation time).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torchvision.transforms import v2

from edgekd.registry import Registry

PRESETS: Registry = Registry("augmentation preset")


def _finish(mean: Sequence[float], std: Sequence[float]) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def eval_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Resize (shorter side), centre-crop to `size`, normalize: the same at every resolution."""
    resize = size if size <= 64 else int(round(size * 8 / 7))
    return v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(size), *_finish(mean, std)])


def _padded_crop_flip(size: int, padding: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.RandomCrop(size, padding=padding),
                       v2.RandomHorizontalFlip(), *_finish(mean, std)])


@PRESETS.register("cifar")
def cifar(size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    return _padded_crop_flip(size, 4, mean, std)


@PRESETS.register("tiny")
def tiny(size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    return _padded_crop_flip(size, 8, mean, std)


@PRESETS.register("imagenet")
def imagenet(size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), *_finish(mean, std)])


@PRESETS.register("none")
def no_augmentation(size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    return eval_transform(size, mean, std)


def resolve_preset(preset: str, size: int) -> str:
    """`preset`, or for 'auto' the one for `size`."""
    if preset == "auto":
        return "cifar" if size <= 32 else "tiny" if size <= 64 else "imagenet"
    return preset


def train_transform(preset: str, size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """The training transform of `preset` ('auto' chooses by `size`), image by image."""
    return PRESETS.get(resolve_preset(preset, size))(size, mean, std)


def uint8_transform(size: int) -> Callable:
    """Resize and centre-crop to `size`, as a uint8 tensor: what batch augmentation starts from."""
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.ToImage(), v2.ToPureTensor()])
