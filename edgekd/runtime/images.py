"""Turning what a user hands the runtime into the float32 NCHW batch a bundle expects (Pillow + numpy).

Accepts image paths, PIL images (RGB, RGBA, LA, grayscale, palette, CMYK, 16-bit, EXIF-rotated) or
arrays that are already preprocessed. Preprocessing follows the manifest: resize the shorter side,
centre-crop, scale to [0, 1], normalize. Anything that cannot be an image of the expected shape is
refused with a ValueError that says what was expected.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgekd.errors import BadInput

ImageInput = Union[str, Path, Image.Image]
PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
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


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(w, h) with the shorter side `shorter` and the longer one scaled and truncated, as torchvision's
    Resize computes it (so the device sees the pixels the model was evaluated on)."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def centre_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """The centre crop's box as torchvision's CenterCrop rounds it."""
    left, top = int(round((width - crop) / 2.0)), int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop


def preprocess(image: Image.Image, spec: dict[str, Any]) -> np.ndarray:
    """(3, crop, crop) float32 as the manifest's `preprocess` section says: resize the shorter side with
    its interpolation (on the 8-bit image, as torchvision and timm do with Pillow), centre-crop, normalize."""
    image = to_rgb(image)
    resize, crop = spec["resize"], spec["crop"]
    interpolation = spec.get("interpolation", "bilinear")
    if interpolation not in PIL_FILTERS:
        raise BadInput(f"the bundle's preprocess asks for '{interpolation}' interpolation; this runtime knows "
                       f"{', '.join(PIL_FILTERS)}. Export the bundle again")
    size = resized_size(*image.size, resize)
    if size != image.size:
        image = image.resize(size, PIL_FILTERS[interpolation])
    if min(image.size) < crop:
        raise BadInput(f"resized to {image.size[0]}x{image.size[1]}, which is smaller than the {crop}px crop")
    array = np.asarray(image.crop(centre_box(*image.size, crop)), dtype=np.float32) * np.float32(spec["scale"])
    array = (array - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def to_batch(inputs: Any, manifest: dict[str, Any]) -> np.ndarray:
    """A float32 (N, 3, H, W) batch from an array, one image or path, or a sequence of them."""
    expected = tuple(manifest["input"]["shape"])
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
        arrays.append(preprocess(item, manifest["preprocess"]))
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
