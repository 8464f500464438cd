"""Certifying a target drop on validation images the threshold search never saw (pure numpy).

A search over hundreds of threshold vectors picks the one that looks best on its own images, so a
bound computed on those images is optimistic. `calibrate --confidence P` therefore splits the
validation images in two:

1. **Search half.** The threshold search runs at a ladder of drops from 0 to the target and lists
   its points along the cost-vs-drop frontier, from the safest (dearest) to the cheapest. Ahead of
   them come the safest point's thresholds raised part of the way to "never exit": on the search
   half they look no better (the search fits its points to those very images), but on new images
   they give up less, so the sequence can keep a dear point where the search's own would fail.
2. **Certify half.** The points are tested in that order (fixed-sequence testing, as in
   Learn-then-Test, Angelopoulos et al. 2021, and Pareto Testing, Laufer-Goldshtein et al. 2023),
   each at level 1 - P, stopping at the first one that fails; the last that passed is kept. The
   order was fixed before the certify half was read, so no multiplicity correction is needed: the
   chance that the kept point's drop on new data exceeds the target is at most 1 - P.

Each test is of H0 "the drop is at least the target" on the signed per-image drop
d = [final exit right] - [exit taken right], in {-1, 0, 1}: by default the exact unconditional
score test for paired proportions, or a betting martingale (`runtime.drop_tests`). Both are
finite-sample and assume only that validation and deployment images are i.i.d. from the same
distribution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.bundle.manifest import DropTest
from edgekd.errors import BadInput
from edgekd.runtime.drop_tests import DROP_TESTS
from edgekd.runtime.thresholds import NEVER, Outcome, assign_exits, calibrate, outcome

LADDER_STEPS = 11  # drops searched on the search half: 0, T/10, ..., T
SAFER_FRACTIONS = (0.8, 0.6, 0.4, 0.2)  # how far the safest point's thresholds are raised toward never-exit, in test order


@dataclass(frozen=True)
class Certified:
    """The outcome of fixed-sequence testing: the point kept (None: none passed) and every test run."""

    thresholds: np.ndarray | None
    certify: Outcome | None  # the kept point on the certify half
    p_value: float | None  # the kept point's
    tested: list[tuple[Outcome, Outcome, float]]  # (search, certify, p-value) in the order tested, up to the first failure


def signed_drops(correct: np.ndarray, exits: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Per image: 1 if the final exit (`reference`; default the last row of `correct`) is right and the answer
    taken is wrong, -1 the other way round, else 0."""
    taken = correct[exits, np.arange(correct.shape[1])]
    return (correct[-1] if reference is None else reference).astype(int) - taken.astype(int)


def frontier(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray, target_drop: float,
             margin: float = 0.0, reference: np.ndarray | None = None) -> list[tuple[np.ndarray, Outcome]]:
    """Threshold points of the search half along the cost-vs-drop frontier, safest (dearest) first:
    the cheapest point at each drop of a ladder from 0 to `target_drop - margin` points, with the
    points another one beats on both cost and accuracy left out; ahead of them, the safest one's
    thresholds raised toward never-exit (`SAFER_FRACTIONS`), dearest first."""
    points: list[tuple[np.ndarray, Outcome]] = []
    for level in np.linspace(0.0, max(target_drop - margin, 0.0), LADDER_STEPS):
        thresholds, result = calibrate(scores, correct, costs, target_drop=float(level), reference=reference)
        if not any(np.array_equal(thresholds, seen) for seen, _ in points):
            points.append((thresholds, result))
    points.sort(key=lambda p: (p[1].cost, -p[1].accuracy))
    kept: list[tuple[np.ndarray, Outcome]] = []
    for thresholds, result in points:  # cheapest first: a dearer point is kept only if it is also more accurate
        if not kept or result.accuracy > kept[-1][1].accuracy:
            kept.append((thresholds, result))
    ladder = kept[::-1]
    safest, safest_cost = ladder[0][0], ladder[0][1].cost
    safer: list[tuple[np.ndarray, Outcome]] = []
    for fraction in SAFER_FRACTIONS:
        raised = np.where(safest >= NEVER, safest, safest + fraction * (1.0 - safest))
        result = outcome(scores, correct, costs, raised, reference)
        if result.cost > safest_cost and (not safer or result.cost < safer[-1][1].cost):
            safer.append((raised, result))
    return safer + ladder


def certify_in_sequence(points: list[tuple[np.ndarray, Outcome]], scores: np.ndarray, correct: np.ndarray, costs: np.ndarray,
                        target_drop: float, confidence: float, seed: int = 0, reference: np.ndarray | None = None,
                        test: DropTest = "exact") -> Certified:
    """Test `points` (thresholds from the search half, safest first) on the certify half's `scores` and
    `correct`, in order, with `test` at level 1 - confidence; keep the last that passes before the first failure."""
    kept: tuple[np.ndarray, Outcome, float] | None = None
    tested: list[tuple[Outcome, Outcome, float]] = []
    for thresholds, searched in points:
        exits = assign_exits(scores, thresholds)
        p = DROP_TESTS[test](signed_drops(correct, exits, reference), target_drop / 100.0, confidence, seed)
        result = outcome(scores, correct, costs, thresholds, reference)
        tested.append((searched, result, p))
        if p > 1.0 - confidence:
            break
        kept = (thresholds, result, p)
    if kept is None:
        return Certified(None, None, None, tested)
    return Certified(*kept, tested)


def images_needed(drops: np.ndarray, target_drop: float, confidence: float, limit: int = 1_000_000,
                  test: DropTest = "exact") -> int | None:
    """About how many certify images a point with these per-image drops (from the search half) would
    need to pass `test`: the certify half is taken to look like `drops`, repeated, and grown by doubling
    until the test passes. None when even `limit` images would not (its drop is at the target or above)."""
    drops = np.asarray(drops)
    if len(drops) == 0 or 100.0 * drops.mean() >= target_drop:
        return None
    size = max(len(drops), 100)
    while size <= limit:
        sample = np.resize(drops, size)
        if DROP_TESTS[test](sample, target_drop / 100.0, confidence) <= 1.0 - confidence:
            return size
        size *= 2
    return None


def split_halves(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the search and certify halves of the validation images, stratified by class and seeded,
    so each half has every class in its share."""
    rng = np.random.default_rng(seed)
    search, certify = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        search.append(rows[: (len(rows) + 1) // 2])
        certify.append(rows[(len(rows) + 1) // 2:])
    return np.sort(np.concatenate(search)), np.sort(np.concatenate(certify))


def check_confidence(confidence: float | None, objective: str = "target_drop", target_drop: float | None = None,
                     test: DropTest = "exact") -> None:
    """Refuse an unknown test, a confidence level that is not a probability in [0.5, 1), one given with
    a budget, or a target drop a test cannot take (below 0 or 100 points and up)."""
    if test not in DROP_TESTS:
        raise BadInput(f"unknown certification test {test!r}; choose one of {', '.join(DROP_TESTS)}")
    if confidence is None:
        return
    if objective != "target_drop":
        raise BadInput("a confidence level applies to a target drop (--target-drop), not to a budget")
    if not 0.5 <= confidence < 1.0:
        raise BadInput(f"confidence must be a probability in [0.5, 1), e.g. 0.9; got {confidence}")
    if target_drop is not None and not 0.0 <= target_drop < 100.0:
        raise BadInput(f"a certified target drop is in accuracy points, from 0 up to 100 (e.g. 0.5); got {target_drop:g}")
