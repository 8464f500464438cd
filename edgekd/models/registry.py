"""The model registry: names -> backbone builders `(*, num_classes, image_size, width) -> Backbone`."""
from edgekd.registry import Registry

MODELS: Registry = Registry("model")
