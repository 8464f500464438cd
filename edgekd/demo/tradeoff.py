"""What the demo computes once at start-up, so every slider move is instant: every exit's scores on
the validation images, each segment's batch-1 latency, and from those the accuracy, mean latency
and exit histogram of any threshold setting."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.runtime.evaluation import exit_logits, load_split, score_exits
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.timing import prefix_latencies, segment_latencies
from edgekd.runtime.thresholds import Outcome, assign_exits, calibrate, outcome, shared_sweep


@dataclass
class OperatingPoint:
    thresholds: np.ndarray
    result: Outcome
    latency_ms: float


class TradeOff:
    """Validation scores and measured latencies of one bundle."""

    def __init__(self, model: EarlyExitModel, data: str | Path | None = None, repeats: int = 20) -> None:
        images, labels = load_split(model, data, "val")
        scored = score_exits(model, exit_logits(model, images), labels)
        self.scores, self.correct = scored.scores, scored.correct
        self.final_alone = scored.exit_correct[-1]  # the plain model: drops are measured from it
        self.costs = np.asarray(model.manifest.exit_costs())
        self.images = len(labels)
        one = images[:1]
        self.segment_ms = 1e3 * np.asarray(segment_latencies(model, one, repeats))
        self.path_ms = np.cumsum(self.segment_ms)
        self.prefix_ms = [1e3 * t for t in prefix_latencies(model, one, repeats)]
        self.full_ms = self.prefix_ms[-1]
        self.exit_accuracy = (100.0 * scored.exit_correct.mean(axis=1)).tolist()

    def at(self, thresholds: np.ndarray) -> OperatingPoint:
        exits = assign_exits(self.scores, thresholds)
        return OperatingPoint(thresholds, outcome(self.scores, self.correct, self.costs, thresholds, self.final_alone), float(self.path_ms[exits].mean()))

    def for_drop(self, drop: float) -> OperatingPoint:
        """The cheapest thresholds within `drop` points of the final exit's validation accuracy."""
        thresholds, _ = calibrate(self.scores, self.correct, self.costs, target_drop=drop, reference=self.final_alone)
        return self.at(thresholds)

    def curve(self) -> list[OperatingPoint]:
        """A shared threshold swept over the score quantiles: the accuracy / latency frontier."""
        return [self.at(np.full(len(self.scores) - 1, t)) for t, _ in shared_sweep(self.scores, self.correct, self.costs, count=41,
                                                                                       reference=self.final_alone)]
