"""The runtime's preprocessing equals timm's eval transform for a bicubic weight config, on real images."""
import numpy as np
import pytest
import torch
from PIL import Image

timm = pytest.importorskip("timm", reason="needs timm (train extra)")

from edgekd.models.timm_models import preprocess_of  # noqa: E402
from edgekd.runtime.images import preprocess  # noqa: E402

SIZE = 224


def test_runtime_preprocessing_matches_timms_eval_transform(shared_cifar10):
    pre = preprocess_of("resnet50")  # timm's resnet50.a1_in1k: bicubic, crop_pct 0.95
    assert pre.interpolation == "bicubic" and pre.crop_pct == 0.95
    spec = pre.spec(SIZE)
    config = timm.data.resolve_data_config({"input_size": (3, SIZE, SIZE)}, model=timm.create_model("resnet50"))
    reference = timm.data.create_transform(**config)
    paths = sorted((shared_cifar10 / "test").glob("*/*"))[::250][:20]
    assert len(paths) == 20
    diffs, float_resize = [], []
    for path in paths:
        image = Image.open(path).convert("RGB")
        want = reference(image).numpy()
        diffs.append(np.abs(preprocess(image, spec) - want).max())
        # The same geometry resized in float instead of on the 8-bit image: what uint8 rounding accounts for.
        pixels = torch.from_numpy(np.asarray(image, np.float32)).permute(2, 0, 1)[None]
        h, w = image.height, image.width
        resized = torch.nn.functional.interpolate(pixels, size=(spec.resize * h // min(h, w), spec.resize * w // min(h, w)),
                                                  mode="bicubic", align_corners=False, antialias=True)[0]
        top = (resized.shape[1] - SIZE + 1) // 2
        crop = resized[:, top:top + SIZE, top:top + SIZE].clamp(0, 255) / 255
        normalized = (crop - torch.tensor(pre.mean).view(3, 1, 1)) / torch.tensor(pre.std).view(3, 1, 1)
        float_resize.append(float((normalized - torch.from_numpy(want)).abs().max()))
    print(f"runtime vs timm: max |diff| {max(diffs):.2e}; float resize vs timm: max |diff| {max(float_resize):.3f}")
    assert max(diffs) < 1e-5  # same Pillow resize on the same 8-bit pixels: float rounding of the normalization only
    assert max(float_resize) > 100 * max(max(diffs), 1e-7)  # resizing in float would not have matched


def test_training_evaluates_on_the_pixels_the_device_sees(shared_cifar10):
    from edgekd.data.transforms import eval_transform

    pre = preprocess_of("resnet50")
    paths = sorted((shared_cifar10 / "test").glob("*/*"))[::500][:10]
    for path in paths:
        image = Image.open(path).convert("RGB")
        np.testing.assert_array_equal(eval_transform(SIZE, pre)(image).numpy(), preprocess(image, pre.spec(SIZE)))
