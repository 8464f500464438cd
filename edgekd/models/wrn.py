"""Pre-activation Wide ResNets WRN-d-k (RepDistiller `wrn.py`): n=(d-4)/6 blocks per group,
widths [16, 16k, 32k, 64k]; the final BN-ReLU belongs to the classifier."""
from __future__ import annotations

from torch import Tensor, nn

from edgekd.models.backbone import Backbone, scaled
from edgekd.models.registry import MODELS


class WideBasic(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity or 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


def wrn(depth: int, k: int, *, num_classes: int, width: float = 1.0, **_: object) -> Backbone:
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n+4, got {depth}")
    n = (depth - 4) // 6
    w = [scaled(c, width) for c in (16, 16 * k, 32 * k, 64 * k)]
    stages, in_ch = [], w[0]
    for i, out_ch in enumerate(w[1:]):
        blocks = [WideBasic(in_ch if j == 0 else out_ch, out_ch, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
        if i == 0:
            blocks.insert(0, nn.Conv2d(3, w[0], 3, 1, 1, bias=False))
        stages.append(nn.Sequential(*blocks))
        in_ch = out_ch
    classifier = nn.Sequential(
        nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, num_classes)
    )
    return Backbone(stages, classifier)


def _register(depth: int, k: int) -> None:
    def build(**cfg: object) -> Backbone:
        return wrn(depth, k, **cfg)  # type: ignore[arg-type]

    build.__doc__ = f"Wide ResNet {depth}-{k}."
    MODELS.register(f"wrn_{depth}_{k}")(build)


for _depth, _k in ((16, 1), (16, 2), (40, 1), (40, 2), (28, 10)):
    _register(_depth, _k)
