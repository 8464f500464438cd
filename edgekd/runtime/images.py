"""Turning what a user hands the runtime into the float32 NCHW batch a bundle expects (Pillow + numpy).

Accepts image paths, PIL images (RGB, RGBA, LA, grayscale, palette, CMYK, 16-bit, EXIF-rotated) or
arrays that are already preprocessed. Preprocessing follows the manifest (`PreprocessSpec.apply`, the
code training evaluated with): resize the shorter side, centre-crop, scale to [0, 1], normalize. Anything that cannot be an image of the expected shape is
refused with a ValueError that says what was expected.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgekd.bundle import Manifest
from edgekd.bundle.preprocess import PreprocessSpec
from edgekd.errors import BadInput

ImageInput = Union[str, Path, Image.Image]
MAX_PIXELS = 64_000_000  # refuse decompression bombs well before they exhaust memory


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode `path`; truncated, unreadable and oversized files raise ValueError."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"image file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise BadInput(f"{path} is {image.width}x{image.height} pixels, over the {MAX_PIXELS:,}-pixel limit "
                                   f"(a decompression bomb, or far larger than a classifier input); resize it first")
                image.load()
                return image.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadInput(f"{path} was refused as a decompression bomb ({err})") from None
    except UnidentifiedImageError:
        raise BadInput(f"{path} is not an image Pillow can read (expected JPEG, PNG, BMP, WebP, ...)") from None
    except OSError as err:
        raise BadInput(f"{path} could not be decoded, it is probably truncated or damaged ({err})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB: EXIF orientation applied, alpha composited on white, 16-bit scaled to 8-bit."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def preprocess(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """(3, crop, crop) float32 as the manifest's `preprocess` section says (`PreprocessSpec.apply`), from
    any image `to_rgb` takes."""
    try:
        return spec.apply(to_rgb(image))
    except ValueError as err:  # an image smaller than the crop after resizing
        raise BadInput(str(err)) from None


def to_batch(inputs: Any, manifest: Manifest) -> np.ndarray:
    """A float32 (N, 3, H, W) batch from an array, one image or path, or a sequence of them."""
    expected = tuple(manifest.input.shape)
    if isinstance(inputs, np.ndarray):
        return check_array(inputs, expected)
    items: Sequence[Any] = [inputs] if isinstance(inputs, (str, Path, Image.Image)) else list(inputs)
    if not items:
        raise BadInput("no images given")
    arrays = []
    for item in items:
        if isinstance(item, (str, Path)):
            item = open_image(item)
        if not isinstance(item, Image.Image):
            raise BadInput(f"expected image paths, PIL images or a float32 array of shape (N, {', '.join(map(str, expected))}), "
                           f"got {type(item).__name__}")
        arrays.append(preprocess(item, manifest.preprocess))
    return np.stack(arrays)


def check_array(array: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
    """A preprocessed batch must be float32, (N, C, H, W) with the bundle's C, H and W."""
    want = f"a float32 array of shape (N, {', '.join(map(str, expected))}) (preprocessed NCHW)"
    if array.dtype != np.float32:
        raise BadInput(f"expected {want}, got dtype {array.dtype}; convert with .astype(np.float32) after normalizing")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise BadInput(f"expected {want}, got {array.ndim} dimensions {array.shape}")
    if array.shape[1] != expected[0]:
        hint = " (channels last? transpose to NCHW)" if array.shape[-1] == expected[0] else ""
        raise BadInput(f"expected {want}, got {array.shape[1]} channels in shape {array.shape}{hint}")
    if tuple(array.shape[2:]) != expected[1:]:
        raise BadInput(f"expected {want}, got spatial size {array.shape[2]}x{array.shape[3]}; pass images or paths to "
                       f"have them resized and cropped")
    if len(array) == 0:
        raise BadInput(f"expected {want}, got an empty batch")
    if not np.isfinite(array).all():
        raise BadInput("the input holds NaN or infinite values")
    return np.ascontiguousarray(array)
