"""How a model wants its images: normalization, resize interpolation and centre-crop fraction.

Pretrained weights were trained with one preprocessing and lose accuracy under another, so a timm or
torchvision model brings its own (timm's `pretrained_cfg`, the torchvision weights' transforms) and
edgekd's own backbones take the dataset's statistics. The training transforms, the bundle manifest and
the runtime all follow the student's `Preprocess`; a teacher that wants another normalization gets its
inputs converted (`MultiExitNet.convert_inputs`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Interpolation = Literal["bilinear", "bicubic", "nearest"]
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic", "nearest")


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
