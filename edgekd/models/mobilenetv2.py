"""MobileNetV2 from torchvision, cut into four stages at its stride changes.

For inputs <= 64 px the stem runs at stride 1 so a 32 px image still ends on a 2x2 map.
"""
from __future__ import annotations

from torch import nn
from torchvision.models import MobileNetV2

from edgekd.models.backbone import Backbone
from edgekd.models.registry import MODELS

# torchvision feature indices where each stage ends (exclusive), chosen at stride changes.
STAGE_ENDS = (4, 7, 14, 19)


@MODELS.register("mobilenetv2")
def mobilenetv2(*, num_classes: int, image_size: int = 32, width: float = 1.0, **_: object) -> Backbone:
    """MobileNetV2 (width multiplier = torchvision's `width_mult`)."""
    net = MobileNetV2(num_classes=num_classes, width_mult=width)
    if image_size <= 64:
        net.features[0][0].stride = (1, 1)
    starts = (0,) + STAGE_ENDS[:-1]
    stages = [nn.Sequential(*net.features[a:b]) for a, b in zip(starts, STAGE_ENDS)]
    last = net.classifier[1]
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), net.classifier[0], last)
    return Backbone(stages, classifier)
