"""`imagefolder`: any class-per-folder tree with `train/`, optional `val/`, and `test/`, holding images of
every extension torchvision's ImageFolder reads (jpg, jpeg, png, ppm, bmp, pgm, tif, tiff, webp)."""
from __future__ import annotations

from pathlib import Path

from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from edgekd.config import DataConfig
from edgekd.data.registry import DATASETS, RawSplits
from edgekd.errors import EdgekdError



def class_folder(path: Path, split: str) -> ImageFolder:
    """One split as an ImageFolder, with a clear error when the folder is missing or empty."""
    if not path.is_dir():
        raise EdgekdError(f"imagefolder: missing '{split}/' folder at {path}. Expected <root>/{split}/<class>/<image>.jpg")
    try:
        return ImageFolder(str(path))  # every extension of IMG_EXTENSIONS, in any case
    except FileNotFoundError as err:
        raise EdgekdError(f"imagefolder: {path} has no class folders with images ({', '.join(IMG_EXTENSIONS)}) ({err})") from None


@DATASETS.register("imagefolder")
def imagefolder(cfg: DataConfig) -> RawSplits:
    """Class-per-folder images under data.root: train/ and test/ required, val/ optional."""
    root = Path(cfg.root).expanduser()
    train, test = class_folder(root / "train", "train"), class_folder(root / "test", "test")
    val = class_folder(root / "val", "val") if (root / "val").is_dir() else None
    for name, split in (("test", test), ("val", val)):
        if split is not None and split.classes != train.classes:
            raise EdgekdError(
                f"imagefolder: {name}/ classes {split.classes} differ from train/ classes {train.classes}"
            )
    return RawSplits(train=train, test=test, val=val, classes=train.classes)
