"""Exit policies: how confident an exit's prediction is, as a score in [0, 1] (higher = surer).

A sample leaves at exit k when its score there reaches threshold k. Every policy maps softmax
probabilities (optionally temperature-scaled per exit) to a score:
- `max_prob`: the top-1 probability;
- `entropy`:  1 - H(p) / log(C), so a one-hot prediction scores 1 and a uniform one 0;
- `margin`:   top-1 minus top-2 probability.

Options that look back along the chain (the running ensemble, agreement, a learned gate) are in
`runtime.trail`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgekd.registry import Registry

POLICIES: Registry = Registry("exit policy")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of `logits / temperature`, in a new array (`logits` is left as it is)."""
    e = logits - logits.max(axis=1, keepdims=True)
    if temperature != 1.0:
        e /= np.asarray(temperature, logits.dtype)
    np.exp(e, out=e)
    e /= e.sum(axis=1, keepdims=True)
    return e


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise log-softmax of `logits / temperature` (exact where the softmax underflows)."""
    z = (logits - logits.max(axis=1, keepdims=True)) / np.asarray(temperature, logits.dtype)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@POLICIES.register("max_prob")
def max_prob(probs: np.ndarray) -> np.ndarray:
    """Top-1 probability."""
    return probs.max(axis=1)


@POLICIES.register("entropy")
def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """One minus the entropy normalized by log(classes)."""
    p = np.clip(probs, 1e-12, 1.0)
    return 1.0 - (-(p * np.log(p)).sum(axis=1)) / np.log(probs.shape[1])


@POLICIES.register("margin")
def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability."""
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def policy(name: str) -> Callable[[np.ndarray], np.ndarray]:
    return POLICIES.get(name)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of `labels` (golden-section search on
    log T in [0.05, 20]); calibrates an exit's confidence on validation data (Guo et al. 2017)."""
    def nll(log_t: float) -> float:
        p = softmax(logits, float(np.exp(log_t)))
        return float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())

    lo, hi = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))
