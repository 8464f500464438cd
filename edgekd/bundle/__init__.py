"""The deploy bundle, the contract between export and runtime: typed manifest, graph and tensor names,
preprocessing, the validation split rule and the file hashes.

Torch-free and owned by neither side: `edgekd.export` writes bundles through it, `edgekd.runtime` reads
them through it, and neither imports the other.
"""
from edgekd.bundle.files import MANIFEST, is_bundle, read_manifest, write_manifest
from edgekd.bundle.manifest import FP32, SCHEMA_VERSION, Manifest

__all__ = ["FP32", "MANIFEST", "Manifest", "SCHEMA_VERSION", "is_bundle", "read_manifest", "write_manifest"]
