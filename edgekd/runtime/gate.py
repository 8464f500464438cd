"""A learned exit gate: a logistic regression per early exit over what the exits so far say.

A single score (max-prob, margin, entropy) sees one exit. The gate also sees the running ensemble
of exits 1..k and whether exit k agrees with exit k-1, and weighs them as the validation data says:
it predicts P(leaving at exit k costs nothing), i.e. no *drop event* (exit k wrong where the final
exit is right). `edgekd calibrate --gate` fits it on the search half of the validation images and
certifies its thresholds on the other half, so the guarantee still holds. It is numpy only: per
exit, one small matrix-vector product on top of the softmax the runtime computes anyway.
"""
from __future__ import annotations

import numpy as np

GATE_FEATURES = ("max_prob", "margin", "entropy", "ensemble_max_prob", "ensemble_margin", "agrees_with_previous")


def gate_features(own: np.ndarray, log_own: np.ndarray, ensemble: np.ndarray, agrees: np.ndarray) -> np.ndarray:
    """(N, len(GATE_FEATURES)): exit k's own probabilities' max-prob, margin and entropy score (from their logs,
    `log_own`), the running ensemble's max-prob and margin, and agreement (0/1)."""
    features = np.empty((len(own), len(GATE_FEATURES)), own.dtype)
    for column, probs in ((0, own), (3, ensemble)):
        top2 = np.partition(probs, -2, axis=1)[:, -2:]
        features[:, column] = top2[:, 1]
        features[:, column + 1] = top2[:, 1] - top2[:, 0]
    features[:, 2] = 1.0 + (own * log_own).sum(axis=1) / np.log(own.shape[1])  # 1 - H(p) / log C
    features[:, 5] = agrees
    return features


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def gate_scores(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """P(no drop event) of each row: sigmoid(features . w + bias), `weights` = (w..., bias)."""
    return _sigmoid(features @ weights[:-1] + weights[-1]).astype(features.dtype)


def fit_gate(features: np.ndarray, safe: np.ndarray, l2: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Logistic-regression weights (w..., bias) predicting `safe` from `features`, by Newton's method with a
    small L2 penalty on w (so a split without drop events still gives finite weights)."""
    x = np.hstack([np.asarray(features, np.float64), np.ones((len(features), 1))])
    y = np.asarray(safe, np.float64)
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = _sigmoid(x @ w)
        gradient = x.T @ (p - y) / len(y) + penalty * w
        hessian = (x.T * (p * (1.0 - p))) @ x / len(y) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w
