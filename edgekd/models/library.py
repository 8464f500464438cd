"""What a model library (timm, torchvision) hands edgekd: the classifier cut into stages, how its weights
want their images, and the module whose parameter names a weight file uses."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgekd.models.backbone import Backbone
from edgekd.bundle.preprocess import Preprocess


@dataclass
class LibraryModel:
    """A library classifier ready to become a MultiExitNet.

    `stage_features` is False when the model could not be cut into stages (it is one stage that outputs
    logits): it can teach logit methods but has no early exits and no feature maps to match.
    `module` is the library's own model, which shares every parameter with `backbone`.
    `fresh_classifier`: the class count of the loaded weights where it differs from the dataset's and
    the classifier was replaced by an untrained one; 0 when the weights' classifier was kept (or none loaded).
    """

    backbone: Backbone
    preprocess: Preprocess
    stage_features: bool
    module: nn.Module
    fresh_classifier: int = 0
