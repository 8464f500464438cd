"""How a reduced-precision graph set (FP16, INT8) compares with the FP32 graphs on the validation split:
per-exit top-1 of both, and per exit the largest logit difference and how often the top-1 class agrees.
Measured through each set's `full` graph in onnxruntime on CPU; for INT8 also with graph optimizations
off (`simulate`), where each Q/DQ pair is a rounding in float32: the graph's own arithmetic, which
TensorRT's INT8 kernels approximate, apart from how this CPU's integer kernels round."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from edgekd.bundle import names
from edgekd.bundle.manifest import Accuracy, ExitAgreement
from edgekd.export.parity import cpu_session


class Reference(NamedTuple):
    """The run's whole validation split (normalized float32 images, labels) and what the FP32 graphs make of it."""

    images: np.ndarray
    labels: np.ndarray
    logits: list[np.ndarray]  # every exit's, from the FP32 `full` graph
    accuracy: Accuracy


def fp32_reference(folder: Path, data: Any) -> Reference:
    """The validation split of `data` (the run's DataSplits) through the FP32 `full` graph in `folder`."""
    images, labels = zip(*(data.val[i] for i in range(len(data.val))))
    images, labels = torch.stack(list(images)).numpy(), np.asarray(labels)
    logits = full_graph_logits(folder / names.graph_file(names.FULL), images)
    return Reference(images, labels, logits, accuracy(logits, labels))


def full_graph_logits(path: Path, images: np.ndarray, batch: int = 256, *, optimize: bool = True) -> list[np.ndarray]:
    """Every exit's logits for `images`, from the `full` graph at `path` (see `cpu_session` for `optimize`)."""
    session = cpu_session(path, optimize=optimize)
    chunks = [session.run(None, {names.IMAGE: images[i:i + batch]}) for i in range(0, len(images), batch)]
    return [np.concatenate([c[k] for c in chunks]).astype(np.float32) for k in range(len(chunks[0]))]


def accuracy(logits: list[np.ndarray], labels: np.ndarray) -> Accuracy:
    """Top-1 (%) of every exit and of the mean-softmax ensemble."""
    probs = [np.exp(z - z.max(1, keepdims=True)) for z in logits]
    probs = [p / p.sum(1, keepdims=True) for p in probs]
    hits = [float((p.argmax(1) == labels).mean()) for p in [*probs, np.mean(probs, axis=0)]]
    top1 = [round(100.0 * h, 3) for h in hits]
    return Accuracy(top1=top1[:-1], ensemble_top1=top1[-1], images=len(labels))


def agreement(reduced: list[np.ndarray], reference: list[np.ndarray]) -> list[ExitAgreement]:
    return [ExitAgreement(max_abs_logit_diff=float(np.max(np.abs(a - b))),
                          argmax_agreement=round(float((a.argmax(1) == b.argmax(1)).mean()), 5))
            for a, b in zip(reduced, reference)]


class Comparison(NamedTuple):
    accuracy: Accuracy  # as onnxruntime's CPU kernels compute the graphs here
    agreement: list[ExitAgreement]
    simulated: Optional[Accuracy]  # the Q/DQ arithmetic in float32 (with `simulate`)


def compare(folder: Path, subdir: str, reference: Reference, simulate: bool = False) -> Comparison:
    """Accuracy of the set in `folder/subdir` on the validation split and its agreement with the FP32 logits."""
    path = folder / subdir / names.graph_file(names.FULL)
    logits = full_graph_logits(path, reference.images)
    simulated = accuracy(full_graph_logits(path, reference.images, optimize=False), reference.labels) if simulate else None
    return Comparison(accuracy(logits, reference.labels), agreement(logits, reference.logits), simulated)


def log_comparison(label: str, fp32: Accuracy, result: Comparison, log: Any) -> None:
    reduced, simulated = result.accuracy, result.simulated
    for k, (a, b, g) in enumerate(zip(fp32.top1, reduced.top1, result.agreement), start=1):
        graph = f"; the graph's own arithmetic {simulated.top1[k - 1]:.2f}" if simulated else ""
        log(f"  exit {k}: val top-1 FP32 {a:.2f}  {label} {b:.2f}  ({b - a:+.2f}); max |logit diff| "
            f"{g.max_abs_logit_diff:.3g}, same top-1 {100 * g.argmax_agreement:.2f}%{graph}")
    log(f"  ensemble: FP32 {fp32.ensemble_top1:.2f}  {label} {reduced.ensemble_top1:.2f}")
