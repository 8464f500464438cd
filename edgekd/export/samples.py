"""Data a bundle carries with it: a sample of the run's validation split (so thresholds can be
calibrated and the demo's trade-off shown without the dataset), a few example images (the only
files the demo serves) and, for INT8, the calibration images (so TensorRT can be calibrated on the
device). Images are stored as uint8 pixels after resize and crop."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekd.bundle import Manifest
from edgekd.bundle.files import CALIBRATION_FILE, EXAMPLES_DIR, VALIDATION_FILE
from edgekd.bundle.manifest import Example, Sample

MAX_VALIDATION_BYTES = 32 * 2**20


def write_samples(folder: Path, manifest: Manifest, data: Any, *, max_images: int = 2000, examples: int = 8,
                  log: Callable[[str], None] = print) -> list[str]:
    """Store up to `max_images` validation images of `data` (the run's DataSplits; uint8, a seeded random
    sample) and `examples` PNGs, and enter them in `manifest`. Returns the files written."""
    size = data.image_size
    budget = max(1, MAX_VALIDATION_BYTES // (3 * size * size))
    order = np.random.default_rng(0).permutation(len(data.val))[: min(max_images, budget)]
    images, labels = zip(*(data.val[int(i)] for i in order))
    normalized = np.stack([np.asarray(x, np.float32) for x in images])
    pixels = manifest.preprocess.to_pixels(normalized)
    np.savez_compressed(folder / VALIDATION_FILE, images=pixels, labels=np.asarray(labels, np.int64))
    (folder / EXAMPLES_DIR).mkdir()
    files = [VALIDATION_FILE]
    manifest.validation_sample = Sample(file=VALIDATION_FILE, images=len(pixels))
    for j in range(min(examples, len(pixels))):
        name = f"{EXAMPLES_DIR}/{j:02d}_{data.classes[labels[j]]}.png"
        _original(data.val, int(order[j]), pixels[j]).save(folder / name)
        files.append(name)
        manifest.examples.append(Example(file=name, label=data.classes[labels[j]]))
    log(f"stored {len(pixels)} validation images ({VALIDATION_FILE}) and {len(manifest.examples)} examples")
    return files


def write_calibration_sample(folder: Path, manifest: Manifest, normalized: np.ndarray) -> str:
    """Store the INT8 calibration images (normalized float32 in, uint8 pixels on disk) and enter them in `manifest`."""
    np.save(folder / CALIBRATION_FILE, manifest.preprocess.to_pixels(normalized))
    manifest.calibration_sample = Sample(file=CALIBRATION_FILE, images=len(normalized))
    return CALIBRATION_FILE


def _original(split: Any, index: int, processed: np.ndarray) -> Any:
    """Validation image `index` as the dataset holds it, before resizing and cropping: an example is an
    image a user would hand the runtime, which then preprocesses it as the manifest says (a crop of an
    already-cropped image would zoom in twice). The processed pixels stand in where the split has no base."""
    from PIL import Image

    base, indices = getattr(split, "base", None), getattr(split, "indices", None)
    if base is not None and indices is not None:
        image = base[indices[index]][0]
        if isinstance(image, Image.Image):
            return image.convert("RGB")
    return Image.fromarray(processed.transpose(1, 2, 0))
