"""What the runtime accepts (every common image mode, EXIF rotation) and what it refuses with a
ValueError that says what was expected (dtype, rank, channels, size, bombs, truncated files)."""
import numpy as np
import pytest
from PIL import Image

from conftest import TINY_BUNDLE
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.images import open_image, preprocess, to_batch

BUNDLE = TINY_BUNDLE
pytestmark = pytest.mark.usefixtures("runtime_fixture")


@pytest.fixture(scope="module")
def model():
    return EarlyExitModel(BUNDLE)


def _gradient(size=(40, 30)):
    w, h = size
    x = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    x[..., 1] = np.linspace(0, 255, h)[:, None]
    return Image.fromarray(x.astype(np.uint8), "RGB")


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "L", "P", "CMYK", "I;16", "1"])
def test_every_common_mode_becomes_a_valid_batch(model, tmp_path, mode):
    image = _gradient()
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)
    else:
        image = image.convert(mode)
    suffix = ".tiff" if mode in ("CMYK", "I;16") else ".png"
    path = tmp_path / f"x{suffix}"
    image.save(path)
    for item in (image, path, str(path)):
        batch = to_batch(item, model.manifest)
        assert batch.shape == (1, 3, 32, 32) and batch.dtype == np.float32 and np.isfinite(batch).all()
    assert model.predict([path, image]).labels.shape == (2,)


def test_sixteen_bit_keeps_its_range(model):
    eight = Image.fromarray(np.full((32, 32), 200, np.uint8))
    sixteen = Image.fromarray(np.full((32, 32), 200 * 257, np.uint16))
    np.testing.assert_allclose(to_batch(eight, model.manifest), to_batch(sixteen, model.manifest), atol=1e-5)


def test_exif_orientation_is_applied(model, tmp_path):
    image = _gradient((48, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    upright = image.transpose(Image.Transpose.ROTATE_270)
    got = preprocess(open_image(tmp_path / "rotated.jpg"), model.manifest.preprocess)
    want = preprocess(upright, model.manifest.preprocess)
    assert np.abs(got - want).mean() < 0.1  # JPEG noise only; unrotated it would be far off
    assert np.abs(preprocess(image, model.manifest.preprocess) - want).mean() > 0.3


def test_alpha_is_composited_on_white(model):
    clear = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    np.testing.assert_allclose(to_batch(clear, model.manifest), to_batch(white, model.manifest))


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 3, 32, 32), np.float64), "dtype float64"),
    (np.zeros((2, 3, 32, 32, 1), np.float32), "5 dimensions"),
    (np.zeros((2, 32, 32, 3), np.float32), "channels last"),
    (np.zeros((2, 1, 32, 32), np.float32), "1 channels"),
    (np.zeros((2, 3, 64, 64), np.float32), "spatial size 64x64"),
    (np.zeros((0, 3, 32, 32), np.float32), "empty batch"),
    (np.full((1, 3, 32, 32), np.nan, np.float32), "NaN"),
])
def test_bad_arrays_name_what_was_expected(model, array, message):
    with pytest.raises(ValueError, match=message) as err:
        model.predict(array)
    assert "(N, 3, 32, 32)" in str(err.value) or message == "NaN"


def test_hostile_and_broken_files_are_refused(model, tmp_path):
    big = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(big)  # tiny file, 81 megapixels when decoded
    with pytest.raises(ValueError, match="decompression bomb"):
        model.predict(big)
    good = tmp_path / "ok.png"
    _gradient((64, 64)).save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or damaged"):
        model.predict(tmp_path / "truncated.png")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        model.predict(tmp_path / "text.jpg")
    with pytest.raises(ValueError, match="expected image paths, PIL images"):
        model.predict([1, 2])
    with pytest.raises(ValueError, match="no images"):
        model.predict([])
