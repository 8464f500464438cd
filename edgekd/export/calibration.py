"""Images a bundle stores, as uint8 (N, 3, H, W) pixels after resize and crop: the INT8 calibration
images of an `onnx-int8` bundle (so TensorRT engines can be calibrated later on the device) and the
validation sample. Numpy only, so the runtime reads them too."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

CALIBRATION_IMAGES = "calibration_images.npy"


def _stats(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(mean, np.float32).reshape(1, 3, 1, 1), np.asarray(std, np.float32).reshape(1, 3, 1, 1)


def to_pixels(normalized: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo the normalization: uint8 pixels."""
    m, s = _stats(mean, std)
    return np.clip(np.rint((normalized * s + m) * 255.0), 0, 255).astype(np.uint8)


def from_pixels(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 pixels -> the normalized float32 batch the first segment takes."""
    m, s = _stats(mean, std)
    return np.ascontiguousarray(((pixels.astype(np.float32) / 255.0) - m) / s)


def save_calibration_images(folder: Path, normalized: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> str:
    np.save(folder / CALIBRATION_IMAGES, to_pixels(normalized, mean, std))
    return CALIBRATION_IMAGES


def load_calibration_images(folder: Path, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    return from_pixels(np.load(folder / CALIBRATION_IMAGES), mean, std)
