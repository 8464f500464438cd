"""The method registry: names -> Method subclasses."""
from edgekd.registry import Registry

METHODS: Registry = Registry("method")
