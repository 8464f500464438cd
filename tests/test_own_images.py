"""Your own images: a CSV list of path,label[,split], and every extension ImageFolder reads."""
import numpy as np
import pytest
from PIL import Image

from edgekd.config import DataConfig
from edgekd.data import build_data
from edgekd.errors import EdgekdError


def _image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12, 3), value, np.uint8)).save(path)


def test_csv_lists_images_relative_to_the_file_with_splits(tmp_path):
    rows = ["path,label,split"]
    for i in range(6):
        for label, value in (("cat", 40), ("dog", 200)):
            split = "test" if i == 5 else "val" if i == 4 else ""
            _image(tmp_path / "pics" / f"{label}{i}.png", value)
            rows.append(f"pics/{label}{i}.png,{label},{split}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    data = build_data(DataConfig(name="csv", root=str(tmp_path / "list.csv"), image_size=8))
    assert list(data.classes) == ["cat", "dog"] and (len(data.train), len(data.val), len(data.test)) == (8, 2, 2)
    image, label = data.test[1]
    assert image.shape == (3, 8, 8) and label == 1 and float(image.mean()) > 0  # the bright dog image


def test_csv_without_splits_carves_test_and_names_bad_rows(tmp_path):
    for i in range(10):
        _image(tmp_path / f"{i}.jpg", 20 * i)
    (tmp_path / "plain.csv").write_text("path,label\n" + "".join(f"{i}.jpg,{i % 2}\n" for i in range(10)))
    data = build_data(DataConfig(name="csv", root=str(tmp_path / "plain.csv"), image_size=8, val_size=2))
    assert (len(data.train), len(data.val), len(data.test)) == (6, 2, 2) and list(data.classes) == ["0", "1"]
    (tmp_path / "bad.csv").write_text("path,label\nmissing.png,a\n")
    with pytest.raises(EdgekdError, match=r"line 2: .*missing.png does not exist \(paths are relative to the CSV file\)"):
        build_data(DataConfig(name="csv", root=str(tmp_path / "bad.csv")))
    (tmp_path / "cols.csv").write_text("file,class\n0.jpg,a\n")
    with pytest.raises(EdgekdError, match="needs a header row with 'path' and 'label' columns"):
        build_data(DataConfig(name="csv", root=str(tmp_path / "cols.csv")))


def test_imagefolder_reads_every_torchvision_extension(tmp_path):
    for split in ("train", "test"):
        for n, ext in enumerate((".bmp", ".webp", ".TIFF", ".ppm")):
            for label, value in (("a", 10), ("b", 250)):
                _image(tmp_path / split / label / f"{n}{ext}", value)
    data = build_data(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_size=2))
    assert len(data.train) + len(data.val) == 8 and len(data.test) == 8
