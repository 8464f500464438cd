"""Checking exported graphs: `onnx.checker` (full check) and outputs against PyTorch in onnxruntime.

Parity inputs are drawn from a seed other than the one used for tracing, at batch sizes 1, 2 and 7.
A segment after the first is fed real feature maps (random images through the earlier trunks),
not noise, so its inputs look like the ones it will see.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgekd.bundle import names
from edgekd.errors import EdgekdError
from edgekd.export.onnx_graphs import GraphSpec
from edgekd.models import MultiExitNet

PARITY_BATCHES = (1, 2, 7)
LOGIT_TOLERANCE = 1e-4  # relative to the largest |logit| (at least 1): float32 reassociation in deep graphs


def check_onnx(path: Path) -> None:
    """onnx.checker with full shape-inference check; a failure names the graph."""
    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except onnx.checker.ValidationError as err:
        raise EdgekdError(f"{path.name} failed onnx.checker: {str(err).splitlines()[0]}") from None


def cpu_session(path: Path | bytes, *, optimize: bool = True) -> ort.InferenceSession:
    """A CPU session for the graph at `path` (or serialized); `optimize=False` runs every node as written (no fusion: a Q/DQ
    pair stays a rounding in float32 instead of becoming an integer kernel)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def graph_input(net: MultiExitNet, spec: GraphSpec, batch: int, generator: torch.Generator) -> torch.Tensor:
    """A realistic input of `spec` at `batch`: random images, through the earlier trunks for a segment."""
    images = torch.randn(batch, 3, net.image_size, net.image_size, generator=generator)
    k = names.exit_of(spec.inputs[0])  # feature_k feeds segment k + 1
    if k is None:
        return images
    x = images
    for trunk in net.trunks[:k]:
        x = trunk(x)
    return x


@torch.no_grad()
def check_parity(net: MultiExitNet, spec: GraphSpec, path: Path, seed: int = 1234) -> dict[str, Any]:
    """Max abs difference of every output (logits checked against the tolerance) and argmax agreement."""
    net.eval()
    session = cpu_session(path)
    generator = torch.Generator().manual_seed(seed)
    worst_logits, worst_any, argmax_equal, scale = 0.0, 0.0, True, 1.0
    for batch in PARITY_BATCHES:
        x = graph_input(net, spec, batch, generator)
        expected = spec.module(x)
        expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
        got = session.run(spec.outputs, {spec.inputs[0]: x.numpy()})
        for name, want, have in zip(spec.outputs, expected, got):
            diff = float(np.max(np.abs(want.numpy() - have)))
            worst_any = max(worst_any, diff)
            if names.is_logits(name):
                worst_logits, scale = max(worst_logits, diff), max(scale, float(np.max(np.abs(want.numpy()))))
                argmax_equal &= bool(np.array_equal(want.numpy().argmax(1), have.argmax(1)))
    tolerance = LOGIT_TOLERANCE * scale
    if worst_logits > tolerance or not argmax_equal:
        raise EdgekdError(f"{spec.name}: onnxruntime differs from PyTorch (max abs logit difference {worst_logits:.2e}, "
                          f"tolerance {tolerance:.1e} = {LOGIT_TOLERANCE:.0e} x the largest |logit|, at least 1; "
                          f"same argmax: {argmax_equal})")
    return {"batches": list(PARITY_BATCHES), "max_abs_logit_diff": worst_logits, "max_abs_diff": worst_any,
            "argmax_equal": argmax_equal}


ROW_GATHER_BATCHES = (1, 7, 64)


def check_row_gather(path: Path, input_shape: tuple[int, ...], seed: int = 1234) -> int:
    """Segment `path`'s row-gathering graph (`edgekd.bundle.row_gather`) against the segment run on the
    kept rows, on onnxruntime's CPU: random inputs and keep masks at ROW_GATHER_BATCHES; the outputs must be
    identical. Returns how many batches were compared; raises where they differ."""
    from edgekd.bundle.row_gather import with_row_gather

    plain = cpu_session(path)
    gathering = cpu_session(with_row_gather(path).SerializeToString())
    source = plain.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    for batch in ROW_GATHER_BATCHES:
        x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
        rows = np.flatnonzero(rng.random(batch) < 0.5) if batch > 1 else np.zeros(1, np.int64)
        expected = plain.run(None, {source: x[rows]})
        got = gathering.run(None, {source: x, names.ROWS: rows.astype(np.int64)})
        for name, a, b in zip((o.name for o in plain.get_outputs()), got, expected):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise EdgekdError(f"{path.name}'s row-gathering graph differs from the segment on the kept rows in {name} "
                                  f"at batch {batch}; please report this with the bundle")
    return len(ROW_GATHER_BATCHES)
