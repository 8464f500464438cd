"""Datasets: shapes determinism and difficulty, splits, imagefolder, Tiny ImageNet layout, CIFAR errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from edgekd.config import DataConfig
from edgekd.data import build_data
from edgekd.data.shapes import CLASSES, ShapesDataset
from edgekd.splits import stratified_split
from edgekd.errors import EdgekdError


def test_shapes_is_deterministic_by_seed_and_split():
    a, b = ShapesDataset("train", 50, seed=3), ShapesDataset("train", 50, seed=3)
    assert np.array_equal(a.images, b.images) and a.targets == b.targets
    assert not np.array_equal(a.images, ShapesDataset("train", 50, seed=4).images)
    assert not np.array_equal(a.images, ShapesDataset("test", 50, seed=3).images)
    # image i depends only on (seed, split, i): a longer dataset starts with the same images
    assert np.array_equal(ShapesDataset("train", 80, seed=3).images[:50], a.images)


def test_shapes_has_easy_and_hard_samples_of_every_class():
    d = ShapesDataset("train", 2000)
    assert set(d.targets) == set(range(len(CLASSES)))
    assert d.difficulty.min() < 0.1 and d.difficulty.max() > 0.9
    easy, hard = d.difficulty < 0.3, d.difficulty > 0.7
    noise = lambda imgs: np.abs(np.diff(imgs.astype(float), axis=2)).mean()  # noqa: E731
    assert noise(d.images[hard]) > 1.5 * noise(d.images[easy])
    image, label = d[0]
    assert isinstance(image, Image.Image) and image.size == (32, 32) and label == d.targets[0]


def test_stratified_split_is_disjoint_seeded_and_balanced():
    targets = [i % 10 for i in range(1000)]
    rest, held = stratified_split(targets, 100, seed=0)
    assert len(held) == 100 and len(rest) == 900 and not set(rest) & set(held)
    assert np.bincount([targets[i] for i in held]).tolist() == [10] * 10
    assert stratified_split(targets, 100, seed=0)[1] == held
    assert stratified_split(targets, 100, seed=1)[1] != held


def test_build_data_carves_validation_and_transforms():
    cfg = DataConfig(name="shapes", train_size=300, test_size=50, val_size=0.2, workers=0)
    data = build_data(cfg)
    assert (len(data.train), len(data.val), len(data.test)) == (240, 60, 50)
    assert not set(data.train.indices) & set(data.val.indices)
    x, y = data.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    # validation is not augmented: the same item twice is the same tensor
    assert torch.equal(data.val[0][0], data.val[0][0])
    fewer = build_data(DataConfig(name="shapes", train_size=300, test_size=50, val_size=0.2, train_fraction=0.5))
    assert len(fewer.train) == 120 and fewer.val.indices == data.val.indices


def test_val_size_must_leave_images():
    with pytest.raises(EdgekdError, match="val_size"):
        build_data(DataConfig(name="shapes", train_size=20, test_size=10, val_size=20))


def _write_images(folder, n, size=32):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((size, size, 3), i * 20 % 255, np.uint8)).save(folder / f"{i}.png")


def test_imagefolder_with_own_val_split(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        for cls in ("cat", "dog"):
            _write_images(tmp_path / split / cls, n)
    data = build_data(DataConfig(name="imagefolder", root=str(tmp_path)))
    assert data.classes == ["cat", "dog"] and (len(data.train), len(data.val), len(data.test)) == (8, 4, 4)


def test_imagefolder_errors_name_the_problem(tmp_path):
    with pytest.raises(EdgekdError, match="missing 'train/' folder"):
        build_data(DataConfig(name="imagefolder", root=str(tmp_path)))
    _write_images(tmp_path / "train" / "cat", 2)
    _write_images(tmp_path / "test" / "dog", 2)
    with pytest.raises(EdgekdError, match="classes"):
        build_data(DataConfig(name="imagefolder", root=str(tmp_path), val_size=1))


def test_imagefolder_on_shared_cifar10(shared_cifar10):
    data = build_data(DataConfig(name="imagefolder", root=str(shared_cifar10), val_size=0.1))
    assert data.classes[:3] == ["airplane", "automobile", "bird"] and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (22500, 2500, 5000)


def test_tinyimagenet_published_layout(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids))
    (root / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n")
    lines = []
    for i, w in enumerate(wnids):
        _write_images(root / "train" / w / "images", 0)
        for j in range(5):
            Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "train" / w / "images" / f"{w}_{j}.JPEG")
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines))
    data = build_data(DataConfig(name="tinyimagenet", root=str(tmp_path), image_size=64, val_size=2))
    assert data.classes == ["goldfish", "European fire salamander"]
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 2)
    assert data.test.targets == [0, 1] and data.train[0][0].shape == (3, 64, 64)


def test_missing_datasets_say_where_files_go(tmp_path):
    with pytest.raises(EdgekdError, match=r"cifar-100-python/.*data\.root"):
        build_data(DataConfig(name="cifar100", root=str(tmp_path), download=False))
    with pytest.raises(EdgekdError, match="tiny-imagenet-200.zip"):
        build_data(DataConfig(name="tinyimagenet", root=str(tmp_path)))
