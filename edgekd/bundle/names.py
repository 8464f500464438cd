"""The names of a bundle's graphs and of the tensors between them, written once.

A bundle of a K-exit model holds, for k = 1..K:
- `segment_k`: `image` (k = 1) or `feature_{k-1}` -> `feature_k`, `logits_k` (the early-exit path);
- `prefix_k`: `image` -> `logits_k` (always leave at exit k);
- `full`: `image` -> `logits_1` ... `logits_K`.
Segments k >= 2 also come as row-gathering graphs (`edgekd.bundle.row_gather`): `feature_{k-1}` and
`rows` (the kept samples' indices) -> the same outputs, for chains that compact on the device.
Exporters, backends and tools build and read these names only through this module.
"""
from __future__ import annotations

IMAGE = "image"
ROWS = "rows"  # int64 indices of the samples a row-gathering segment keeps
FULL = "full"
GRAPH_SUFFIX = ".onnx"


def segment(k: int) -> str:
    """Graph name of segment k (1-based)."""
    return f"segment_{k}"


def prefix(k: int) -> str:
    """Graph name of the prefix that ends at exit k (1-based)."""
    return f"prefix_{k}"


def rows_segment(k: int) -> str:
    """Graph name of segment k (k >= 2) gathering the kept rows first (`edgekd.bundle.row_gather`)."""
    return f"rows_segment_{k}"


def is_rows_segment(name: str) -> bool:
    return name.startswith("rows_segment_")


def feature(k: int) -> str:
    """The feature map segment k hands to segment k + 1."""
    return f"feature_{k}"


def logits(k: int) -> str:
    """The logits of exit k."""
    return f"logits_{k}"


def segment_input(k: int) -> str:
    """What segment k reads: the image for the first, the previous feature map after that."""
    return IMAGE if k == 1 else feature(k - 1)


def segment_outputs(k: int) -> list[str]:
    return [feature(k), logits(k)]


def graph_file(name: str) -> str:
    """The file a graph is written to, relative to its precision's folder."""
    return name + GRAPH_SUFFIX


def segments(num_exits: int) -> list[str]:
    return [segment(k) for k in range(1, num_exits + 1)]


def graphs(num_exits: int) -> list[str]:
    """Every graph of a bundle, in export order: segments, prefixes, full."""
    return [*segments(num_exits), *(prefix(k) for k in range(1, num_exits + 1)), FULL]


def is_segment(name: str) -> bool:
    return name.startswith("segment_")


def is_logits(name: str) -> bool:
    return name.startswith("logits_")


def exit_of(name: str) -> int | None:
    """The exit (1-based) a segment, prefix, feature or logits name ends at; None for `full` and `image`."""
    stem, _, number = name.rpartition("_")
    if stem in ("segment", "rows_segment", "prefix", "feature", "logits") and number.isdigit():
        return int(number)
    if name in (FULL, IMAGE):
        return None
    raise ValueError(f"{name!r} is not a bundle graph or tensor name")
