"""CIFAR-10 and CIFAR-100 through torchvision, downloaded into the data root when missing."""
from __future__ import annotations

from pathlib import Path

from torchvision.datasets import CIFAR10, CIFAR100

from edgekd.config import DataConfig
from edgekd.data.registry import DATASETS, RawSplits
from edgekd.errors import EdgekdError

STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


def _load(cls: type, folder: str, name: str, cfg: DataConfig) -> RawSplits:
    root = Path(cfg.root).expanduser()
    try:
        train = cls(str(root), train=True, download=cfg.download)
        test = cls(str(root), train=False, download=cfg.download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise EdgekdError(
            f"{name} not found in {root / folder}/ ({err}). Put the extracted '{folder}/' folder from the "
            f"official archive in {root}/, or point data.root at its parent (--set data.root=PATH)"
        ) from None
    except OSError as err:  # download failed: offline, proxy, disk
        raise EdgekdError(
            f"{name} is not in {root / folder}/ and could not be downloaded ({err}). Offline? Copy the extracted "
            f"'{folder}/' folder into {root}/ or set data.root (--set data.root=PATH)"
        ) from None
    mean, std = STATS[name]
    return RawSplits(train=train, test=test, classes=train.classes, mean=mean, std=std)


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig) -> RawSplits:
    """CIFAR-10 (50k train / 10k test, 32 px)."""
    return _load(CIFAR10, "cifar-10-batches-py", "cifar10", cfg)


@DATASETS.register("cifar100")
def cifar100(cfg: DataConfig) -> RawSplits:
    """CIFAR-100 (50k train / 10k test, 32 px)."""
    return _load(CIFAR100, "cifar-100-python", "cifar100", cfg)
