"""Transform presets by resolution; `auto` picks one from the image size.

- `cifar` (<= 32 px): random crop with 4 px padding + horizontal flip.
- `tiny` (<= 64 px): random crop with 8 px padding + horizontal flip.
- `imagenet` (larger): random resized crop + flip, the ImageNet training augmentation.
- `none`: resize and normalize only.

Evaluation is the same for every preset, and the same code as on the device: `PreprocessSpec.apply`
(edgekd.bundle.preprocess) resizes the shorter side to `Preprocess.resize_for(size)` with the model's
interpolation, centre-crops and normalizes with the model's statistics. Every preset starts from the
same resize and centre crop (`PreprocessSpec.resize_and_crop`).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torchvision.transforms import InterpolationMode, v2

from edgekd.bundle.preprocess import Preprocess, PreprocessSpec
from edgekd.registry import Registry

PRESETS: Registry = Registry("augmentation preset")


def interpolation_mode(pre: Preprocess) -> InterpolationMode:
    return InterpolationMode(pre.interpolation)


def _finish(pre: Preprocess) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)]


def _resize_crop(size: int, pre: Preprocess) -> list:
    return [pre.spec(size).resize_and_crop]


class EvalTransform:
    """PIL image -> (3, size, size) float32 tensor by `PreprocessSpec.apply`: what the runtime does on the device."""

    def __init__(self, spec: PreprocessSpec) -> None:
        self.spec = spec

    def __call__(self, image: Any) -> torch.Tensor:
        return torch.from_numpy(self.spec.apply(image))


def eval_transform(size: int, pre: Preprocess) -> Callable:
    """Resize (shorter side), centre-crop to `size`, normalize: what the runtime does on the device."""
    return EvalTransform(pre.spec(size))


def _padded_crop_flip(size: int, padding: int, pre: Preprocess) -> Callable:
    return v2.Compose([*_resize_crop(size, pre), v2.RandomCrop(size, padding=padding), v2.RandomHorizontalFlip(), *_finish(pre)])


@PRESETS.register("cifar")
def cifar(size: int, pre: Preprocess) -> Callable:
    return _padded_crop_flip(size, 4, pre)


@PRESETS.register("tiny")
def tiny(size: int, pre: Preprocess) -> Callable:
    return _padded_crop_flip(size, 8, pre)


@PRESETS.register("imagenet")
def imagenet(size: int, pre: Preprocess) -> Callable:
    return v2.Compose([v2.RandomResizedCrop(size, interpolation=interpolation_mode(pre), antialias=True),
                       v2.RandomHorizontalFlip(), *_finish(pre)])


@PRESETS.register("none")
def no_augmentation(size: int, pre: Preprocess) -> Callable:
    return eval_transform(size, pre)


def resolve_preset(preset: str, size: int) -> str:
    """`preset`, or for 'auto' the one for `size`."""
    if preset == "auto":
        return "cifar" if size <= 32 else "tiny" if size <= 64 else "imagenet"
    return preset


def train_transform(preset: str, size: int, pre: Preprocess) -> Callable:
    """The training transform of `preset` ('auto' chooses by `size`), image by image."""
    return PRESETS.get(resolve_preset(preset, size))(size, pre)


def uint8_transform(size: int, pre: Preprocess) -> Callable:
    """Resize and centre-crop to `size`, as a uint8 tensor: what batch augmentation starts from."""
    return v2.Compose([*_resize_crop(size, pre), v2.ToImage(), v2.ToPureTensor()])
