"""How well an exit score predicts the one event that costs accuracy: leaving early when it should not.

Leaving at exit k loses a point only where exit k is wrong and the final exit is right (the *drop
event*); where both are wrong, leaving early costs nothing. A good exit score is low on those
images and high elsewhere. The measure is failure-prediction AUROC: the chance that an image
without the drop event scores higher than one with it (ties count half), 0.5 for a useless score
and 1 for a perfect one. It judges the ranking the thresholds cut, which is what matters, where
calibration error judges the probabilities' values.
"""
from __future__ import annotations

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0  # first is 0-based: ranks first+1 .. first+count
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def auroc(scores: np.ndarray, events: np.ndarray) -> float:
    """P(score of an image without the event > score of one with it), ties half; NaN without both kinds."""
    events = np.asarray(events, bool)
    positives, negatives = int(events.sum()), int((~events).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = average_ranks(np.asarray(scores, float))
    wins = ranks[~events].sum() - negatives * (negatives + 1) / 2.0
    return float(wins / (positives * negatives))


def drop_event_auroc(scores: np.ndarray, correct: np.ndarray) -> list[float]:
    """AUROC of each early exit's scores (K, N) on its drop event (exit k wrong, final exit right)."""
    return [auroc(scores[k], ~correct[k] & correct[-1]) for k in range(len(scores) - 1)]
