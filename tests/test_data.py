"""Datasets: shapes determinism and difficulty, splits, imagefolder, Tiny ImageNet layout, CIFAR errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from edgekd.config import DataConfig
from edgekd.data import build_data
from edgekd.data.batch_augment import PaddedCropFlip
from edgekd.data.shapes import CLASSES, ShapesDataset
from edgekd.bundle.splits import stratified_split
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
    x, y = data.train[0]  # uint8: the trainer augments whole batches (edgekd.data.batch_augment)
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and isinstance(y, int)
    batch = data.train_batch_augment(torch.stack([x, data.train[1][0]]), torch.Generator().manual_seed(0))
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == torch.float32
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


def crops_and_flips(image: torch.Tensor, padding: int) -> list[torch.Tensor]:
    """Every crop of the zero-padded uint8 `image` at its own size, each also flipped."""
    _, h, w = image.shape
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    crops = [padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)]
    return crops + [c.flip(-1) for c in crops]


def test_batch_augmentation_draws_each_image_its_own_padded_crop_and_flip():
    """The batched `cifar` preset: every output is a normalized crop of the black-padded image, flipped or
    not, with offsets and flips drawn per image, reproducibly from the generator."""
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
    augment = PaddedCropFlip(4, mean, std)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(1))
    again = augment(images, torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and out.dtype == torch.float32
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    pixels = torch.round((out * s + m) * 255).to(torch.uint8)
    choices = []
    for image, got in zip(images, pixels):
        candidates = crops_and_flips(image, 4)
        matches = [i for i, c in enumerate(candidates) if torch.equal(c, got)]
        assert matches, "an output is no padded crop (or its flip) of its image"
        choices.append(matches[0])
    assert len(set(choices)) > 32  # offsets and flips differ from image to image
    flipped = sum(c >= 81 for c in choices)
    assert 16 <= flipped <= 48  # about half are flipped
