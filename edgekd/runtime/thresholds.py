"""Choosing per-exit thresholds from every exit's scores on validation data (pure numpy).

A sample leaves at the first exit k whose score reaches threshold k (the last exit takes the rest).
Its cost is the FLOPs of the path to that exit, heads of the earlier exits included, as a fraction
of the plain model (the final exit alone), so 1.0 is the cost of not exiting early.

Search (`calibrate`):
1. Candidate thresholds per exit are the quantiles of that exit's scores (plus "never exit").
2. A shared threshold is swept over all candidates; the best point that meets the constraint starts
3. coordinate descent: each exit's threshold in turn is set to the candidate that most improves the
   objective with the others held, until a full pass changes nothing.
Objectives: `target_drop` - the smallest mean cost whose accuracy is within `target_drop` points
of the final exit's (plus `margin`); `budget` - the best accuracy whose mean cost is at most `budget`.
The drop is measured against the final exit alone (`reference`: which samples it gets right), which is
the plain model, also where the last row of `correct` is what the final exit answers with the
ensemble of every exit (`runtime.trail`).
The search's own figures are optimistic for new data (it picked the best of many points on these
images); `certify` tests its points on images it never saw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.errors import BadInput

NEVER = 1.0 + 1e-9  # a threshold no score in [0, 1] reaches


@dataclass(frozen=True)
class Outcome:
    accuracy: float  # %
    cost: float  # mean fraction of the plain model's FLOPs
    exit_counts: tuple[int, ...]
    drop_se: float = 0.0  # paired standard error (points) of the drop from the final exit


def assign_exits(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """0-based exit of every sample. `scores`: (K, N); `thresholds`: (K-1,)."""
    leaves = scores[:-1] >= thresholds[:, None]
    leaves = np.vstack([leaves, np.ones((1, scores.shape[1]), bool)])
    return leaves.argmax(axis=0)


def mean_cost(counts: np.ndarray, costs: np.ndarray, n: int) -> np.ndarray:
    """Mean cost from exit counts (..., K), summed exit by exit so that equal counts give bit-equal costs."""
    total = np.zeros(counts.shape[:-1])
    for k, cost in enumerate(costs):
        total = total + counts[..., k] * cost
    return total / n


def outcome(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray, thresholds: np.ndarray,
            reference: np.ndarray | None = None) -> Outcome:
    """Accuracy, cost and exit counts of `thresholds`; the drop's s.e. against `reference` (default: the last row of `correct`)."""
    exits = assign_exits(scores, thresholds)
    taken = correct[exits, np.arange(scores.shape[1])]
    counts = np.bincount(exits, minlength=len(costs))
    return Outcome(float(100.0 * (taken.sum() / len(taken))), float(mean_cost(counts, costs, len(taken))), tuple(counts.tolist()),
                   drop_se(correct[-1] if reference is None else reference, taken))


def sweep_one(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray, thresholds: np.ndarray, k: int,
              values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (%) and mean cost for each of `values` as exit k's threshold, the others held, all at once:
    the samples an earlier exit takes stay put, and the others leave at k when their score reaches the
    value and otherwise go where they would with exit k closed. Figures match `outcome` exactly."""
    n, count = scores.shape[1], len(costs)
    closed = np.vstack([scores[:-1] >= thresholds[:, None], np.ones((1, n), bool)])
    closed[k] = False
    elsewhere = closed.argmax(axis=0)  # the exit each sample takes if exit k never takes it
    earlier = (scores[:k] >= thresholds[:k, None]).any(axis=0)
    taken_earlier, free = np.flatnonzero(earlier), np.flatnonzero(~earlier)
    order = free[np.argsort(scores[k, free], kind="mergesort")]
    stays = np.searchsorted(scores[k, order], values, side="left")  # per value: free samples scoring below it go on
    went_on = np.zeros((len(order) + 1, count), int)
    went_on[np.arange(1, len(order) + 1), elsewhere[order]] = 1
    counts = np.cumsum(went_on, axis=0)[stays] + np.bincount(elsewhere[taken_earlier], minlength=count)
    counts[:, k] += len(order) - stays
    right_on = np.concatenate([[0], np.cumsum(correct[elsewhere[order], order])])
    right_at_k = np.concatenate([[0], np.cumsum(correct[k, order])])
    right = correct[elsewhere[taken_earlier], taken_earlier].sum() + right_on[stays] + right_at_k[-1] - right_at_k[stays]
    return 100.0 * (right / n), mean_cost(counts, costs, n)


def candidates(scores: np.ndarray, count: int = 101) -> list[np.ndarray]:
    return [np.unique(np.append(np.quantile(s, np.linspace(0, 1, count)), NEVER)) for s in scores[:-1]]


def shared_sweep(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray, count: int = 101,
                 reference: np.ndarray | None = None) -> list[tuple[float, Outcome]]:
    """(threshold, outcome) for one threshold shared by every early exit, over the scores' quantiles."""
    grid = np.unique(np.append(np.quantile(scores[:-1], np.linspace(0, 1, count)), NEVER))
    return [(float(t), outcome(scores, correct, costs, np.full(len(scores) - 1, t), reference)) for t in grid]


def _better(a: Outcome, b: Outcome | None, objective: str, limit: float) -> bool:
    """Is `a` feasible and better than `b` (None: nothing feasible yet)?"""
    if objective == "target_drop":
        if a.accuracy < limit:
            return False
        return b is None or (a.cost, -a.accuracy) < (b.cost, -b.accuracy)
    if a.cost > limit:
        return False
    return b is None or (-a.accuracy, a.cost) < (-b.accuracy, b.cost)


def calibrate(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray, *, target_drop: float | None = None,
              budget: float | None = None, margin: float = 0.0, reference: np.ndarray | None = None) -> tuple[np.ndarray, Outcome]:
    """Thresholds (K-1,) and their validation outcome for the objective (exactly one of target_drop, budget);
    the drop is taken from `reference`'s accuracy (default: the last row of `correct`)."""
    if (target_drop is None) == (budget is None):
        raise BadInput("give exactly one of target_drop (accuracy points) or budget (fraction of the model's FLOPs)")
    objective = "target_drop" if target_drop is not None else "budget"
    final_accuracy = 100.0 * (correct[-1] if reference is None else reference).mean()
    limit = final_accuracy - target_drop + margin if objective == "target_drop" else float(budget)
    best_t, best = None, None
    for t, result in shared_sweep(scores, correct, costs, reference=reference):
        if _better(result, best, objective, limit):
            best_t, best = np.full(len(scores) - 1, t), result
    if best is None:
        if objective == "budget":
            raise BadInput(f"no thresholds keep the mean cost within budget {budget:.2f}: even leaving every sample at "
                           f"exit 1 costs {costs[0]:.2f} of the model")
        best_t, best = np.full(len(scores) - 1, NEVER), outcome(scores, correct, costs, np.full(len(scores) - 1, NEVER), reference)
    options = candidates(scores)
    improved = True
    while improved:
        improved = False
        for k, values in enumerate(options):
            accuracy, cost = sweep_one(scores, correct, costs, best_t, k, values)
            feasible = np.flatnonzero(accuracy >= limit if objective == "target_drop" else cost <= limit)
            if not len(feasible):
                continue
            keys = (-accuracy[feasible], cost[feasible]) if objective == "target_drop" else (cost[feasible], -accuracy[feasible])
            trial = best_t.copy()
            trial[k] = values[feasible[np.lexsort(keys)[0]]]  # lexsort's last key is the primary; stable: the first of equals
            result = outcome(scores, correct, costs, trial, reference)
            if _better(result, best, objective, limit):
                best_t, best, improved = trial, result, True
    return best_t, best


def oracle(correct: np.ndarray, costs: np.ndarray) -> Outcome:
    """Every sample leaves at its earliest correct exit (samples no exit gets right leave at exit 1)."""
    any_correct = correct.any(axis=0)
    exits = np.where(any_correct, correct.argmax(axis=0), 0)
    return Outcome(float(100.0 * any_correct.mean()), float(costs[exits].mean()), tuple(np.bincount(exits, minlength=len(costs)).tolist()))


def oracle_cost_at(correct: np.ndarray, costs: np.ndarray, accuracy: float) -> float:
    """The least mean cost at which an oracle reaches `accuracy` (%): from the oracle's assignment,
    the samples whose earliest correct exit is dearest are sent to exit 1 until only `accuracy` remains."""
    any_correct = correct.any(axis=0)
    n = correct.shape[1]
    per_sample = np.where(any_correct, costs[correct.argmax(axis=0)], costs[0])
    keep = int(np.ceil(accuracy / 100.0 * n - 1e-9))
    dear_first = np.sort(per_sample[any_correct])[::-1]
    dropped = max(0, len(dear_first) - keep)
    total = per_sample.sum() - dear_first[:dropped].sum() + dropped * costs[0]
    return float(total / n)


def hindsight(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray, floor: float, reference: np.ndarray | None = None,
              known: Outcome | None = None) -> Outcome | None:
    """The cheapest point the search finds on these very samples at `floor` (%) accuracy or more (None: not
    even never exiting early gets there); `known`, a point already there, is kept where the search finds
    nothing cheaper. On a test split: what the same scores would save with that split in hand (the search's
    pick, not a proven optimum), between a point calibrated elsewhere and the `oracle`."""
    final_accuracy = 100.0 * (correct[-1] if reference is None else reference).mean()
    _, found = calibrate(scores, correct, costs, target_drop=final_accuracy - floor + 1e-9, reference=reference)
    at_floor = [p for p in (found, known) if p is not None and p.accuracy >= floor - 1e-9]
    return min(at_floor, key=lambda p: (p.cost, -p.accuracy)) if at_floor else None


def drop_se(final_correct: np.ndarray, taken_correct: np.ndarray) -> float:
    """Standard error (points) of the accuracy drop from the final exit to the exits taken, paired over
    the same samples: only samples the two disagree on add noise, so it is far below the binomial one."""
    diff = final_correct.astype(float) - taken_correct.astype(float)
    return float(100.0 * diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error (points) of an accuracy (%) measured on n samples."""
    p = accuracy / 100.0
    return float(100.0 * np.sqrt(max(p * (1 - p), 1e-12) / max(n, 1)))
