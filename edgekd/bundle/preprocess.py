"""How a model wants its images, and the one implementation of eval preprocessing (Pillow + numpy).

`Preprocess` is what a model brings: timm's `pretrained_cfg` or the torchvision weights' transforms
(normalization, interpolation, crop fraction), or for edgekd's own backbones the dataset's statistics.
`PreprocessSpec` is that preference at one image size, as the bundle manifest records it. Training's eval
transform and the device runtime both call `PreprocessSpec.apply` (and the training augmentations start
from `resize_and_crop`), so the pixels a model was evaluated on are the pixels it sees on the device.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

Interpolation = Literal["bilinear", "bicubic", "nearest"]
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic", "nearest")
PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


@dataclass(frozen=True)
class Preprocess:
    """Eval preprocessing: resize the shorter side to `resize_for(size)` with `interpolation`, centre-crop
    `size`, scale to [0, 1], subtract `mean`, divide by `std` (per RGB channel)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Interpolation = "bilinear"
    crop_pct: float = 0.875

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")

    def resize_for(self, size: int) -> int:
        """The shorter side before the centre crop, as timm computes it: floor(size / crop_pct)."""
        return max(size, math.floor(size / self.crop_pct + 1e-6))

    def spec(self, size: int) -> "PreprocessSpec":
        """This preprocessing at `size` pixels: what a bundle records and the runtime applies."""
        return PreprocessSpec(resize=self.resize_for(size), crop=size, interpolation=self.interpolation,
                              mean=self.mean, std=self.std)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Preprocess":
        return cls(mean=tuple(raw["mean"]), std=tuple(raw["std"]), interpolation=raw.get("interpolation", "bilinear"),
                   crop_pct=raw.get("crop_pct", 0.875))


def dataset_preprocess(mean: tuple[float, float, float], std: tuple[float, float, float], size: int) -> Preprocess:
    """What edgekd's own backbones use: the dataset's statistics, bilinear, no crop margin up to 64 px
    (CIFAR-style images are used whole) and the usual 7/8 crop above."""
    return Preprocess(mean=tuple(mean), std=tuple(std), interpolation="bilinear", crop_pct=1.0 if size <= 64 else 0.875)


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(w, h) with the shorter side `shorter` and the longer one scaled and truncated, as torchvision's
    Resize computes it."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def centre_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """The centre crop's box as torchvision's CenterCrop rounds it."""
    left, top = int(round((width - crop) / 2.0)), int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop


class PreprocessSpec(BaseModel):
    """A bundle's eval preprocessing: resize the shorter side to `resize` with `interpolation` (on the 8-bit
    image, as torchvision and timm do with Pillow), centre-crop `crop`, multiply by `scale`, normalize."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resize: int
    crop: int
    interpolation: Interpolation = "bilinear"
    scale: float = 1 / 255
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def resize_and_crop(self, image: Image.Image) -> Image.Image:
        """The RGB `image` resized (shorter side) and centre-cropped, still 8-bit."""
        size = resized_size(*image.size, self.resize)
        if size != image.size:
            image = image.resize(size, PIL_FILTERS[self.interpolation])
        if min(image.size) < self.crop:
            raise ValueError(f"resized to {image.size[0]}x{image.size[1]}, which is smaller than the {self.crop}px crop")
        return image.crop(centre_box(*image.size, self.crop))

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels, (..., 3, H, W) -> the normalized float32 the first segment takes."""
        mean, std = self._stats(pixels.ndim)
        return np.ascontiguousarray((pixels.astype(np.float32) * np.float32(self.scale) - mean) / std)

    def to_pixels(self, normalized: np.ndarray) -> np.ndarray:
        """`normalize` undone: uint8 pixels of the same shape."""
        mean, std = self._stats(normalized.ndim)
        return np.clip(np.rint((normalized * std + mean) / np.float32(self.scale)), 0, 255).astype(np.uint8)

    def apply(self, image: Image.Image) -> np.ndarray:
        """(3, crop, crop) float32 from an RGB image: resize, centre-crop, normalize."""
        return self.normalize(np.asarray(self.resize_and_crop(image)).transpose(2, 0, 1))

    def _stats(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (1,) * (ndim - 3) + (3, 1, 1)
        return np.asarray(self.mean, np.float32).reshape(shape), np.asarray(self.std, np.float32).reshape(shape)

