"""The calibration images an `onnx-int8` bundle keeps, so INT8 TensorRT engines can be calibrated
later on the device without the training data: preprocessed crops stored as uint8 (N, 3, H, W)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

CALIBRATION_IMAGES = "calibration_images.npy"


def _stats(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(mean, np.float32).reshape(1, 3, 1, 1), np.asarray(std, np.float32).reshape(1, 3, 1, 1)


def save_calibration_images(folder: Path, normalized: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> str:
    """Undo the normalization of `normalized` images and store them as uint8; returns the file name."""
    m, s = _stats(mean, std)
    pixels = np.clip(np.rint((normalized * s + m) * 255.0), 0, 255).astype(np.uint8)
    np.save(folder / CALIBRATION_IMAGES, pixels)
    return CALIBRATION_IMAGES


def load_calibration_images(folder: Path, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The stored calibration images, normalized float32, ready for the first segment."""
    m, s = _stats(mean, std)
    return ((np.load(folder / CALIBRATION_IMAGES).astype(np.float32) / 255.0) - m) / s
