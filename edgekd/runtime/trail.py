"""One batch's walk down the exits: what each exit answers and how sure it is, given the exits before it.

The options here look back along the chain, for the early exits, and one for the final exit:
- `running_ensemble`: exit k answers with the geometric ensemble of exits 1..k (the normalized
  product of their temperature-scaled probabilities), and is scored on it;
- `agreement`: exit k's score is 0 where its top-1 class differs from exit k-1's, so a sample
  leaves only where two exits in a row agree (exit 1 is scored as it is);
- `gate`: exit k's score is a learned gate's P(no drop event) over its own scores, the running
  ensemble's and agreement (`runtime.gate`), in place of the policy's score;
- `final_ensemble`: the final exit answers with the geometric ensemble of every exit, not alone. A
  sample that reaches it has paid for every exit's logits already, so the ensemble costs a softmax.
  The drop is still measured against the final exit alone, the plain model (`runtime.thresholds`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from edgekd.runtime.gate import gate_features, gate_scores
from edgekd.runtime.policies import log_softmax, softmax


@dataclass
class ExitTrail:
    """What exit k answers and its score for the rows still running. `keep` drops the rows that left (compaction)."""

    score: Callable[[np.ndarray], np.ndarray]
    temperatures: Sequence[float]
    running_ensemble: bool = False
    agreement: bool = False
    gate: Sequence[np.ndarray] = ()  # per early exit: the gate's weights (runtime.gate); empty: no gate
    final_ensemble: bool = False
    log_sum: Optional[np.ndarray] = field(default=None, repr=False)  # sum of exits 1..k's log-probabilities
    previous: Optional[np.ndarray] = field(default=None, repr=False)  # exit k's own top-1 classes

    def _add(self, log_p: np.ndarray) -> None:
        """Adds an exit's log-probabilities to the trail's sum."""
        self.log_sum = log_p if self.log_sum is None else self.log_sum + log_p

    def _ensemble(self, log_p: np.ndarray, k: int) -> np.ndarray:
        """Adds exit `k`'s log-probabilities to the trail; the normalized geometric mean of exits 1..k."""
        self._add(log_p)
        return softmax(self.log_sum, float(k + 1))

    def look(self, logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(answer probabilities, gate features) of early exit `k` (0-based) for the rows still running; moves the trail on."""
        log_p = log_softmax(logits, self.temperatures[k])
        own, ensemble = np.exp(log_p), self._ensemble(log_p, k)
        own_labels = own.argmax(1)
        agrees = np.ones(len(own), bool) if self.previous is None else own_labels == self.previous
        self.previous = own_labels
        return (ensemble if self.running_ensemble else own), gate_features(own, log_p, ensemble, agrees)

    def step(self, logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, scores) of exit `k` (0-based) for the rows still running."""
        final = k == len(self.temperatures) - 1
        if self.gate and not final:
            probs, features = self.look(logits, k)
            return probs, gate_scores(features, self.gate[k])
        if (self.running_ensemble and not final) or (self.final_ensemble and final):
            log_p = log_softmax(logits, self.temperatures[k])
            own_labels = log_p.argmax(1)
            probs = self._ensemble(log_p, k)
        else:
            probs = softmax(logits, self.temperatures[k])
            own_labels = probs.argmax(1)
            if self.final_ensemble:  # the final exit's ensemble needs every exit's log-probabilities
                self._add(log_softmax(logits, self.temperatures[k]))
        scores = self.score(probs)
        if self.agreement:
            if self.previous is not None:
                scores = np.where(own_labels == self.previous, scores, 0.0).astype(scores.dtype)
            self.previous = own_labels
        return probs, scores

    def keep(self, rows: np.ndarray) -> None:
        """Keep only `rows` (a boolean mask or indices) of what the trail carries."""
        if self.log_sum is not None:
            self.log_sum = self.log_sum[rows]
        if self.previous is not None:
            self.previous = self.previous[rows]
