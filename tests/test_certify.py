"""Certifying a target drop on the half of validation the search never saw: the exact and betting
tests, the fixed-sequence rule, and that the promise holds on new data after a search."""
import math

import numpy as np
import pytest

from edgekd.runtime.certify import (SAFER_FRACTIONS, certify_in_sequence, check_confidence, frontier, images_needed, signed_drops,
                                    split_halves)
from edgekd.runtime.drop_tests import DROP_TESTS, exact_p_value, score_statistic
from edgekd.runtime.thresholds import NEVER, assign_exits, calibrate, outcome


def _drops(rng, n, worse, better):
    """Per-image drops: +1 with probability `worse`, -1 with `better`, else 0."""
    u = rng.random(n)
    return np.where(u < worse, 1, np.where(u < worse + better, -1, 0))


@pytest.mark.parametrize("test", sorted(DROP_TESTS))
def test_each_test_rejects_a_true_drop_at_the_target_at_most_as_often_as_its_level(test):
    p_value, rng = DROP_TESTS[test], np.random.default_rng(0)
    # the drop is exactly the target (0.5 points), with 1%, 3% and 10% of images discordant
    for worse, better in ((0.0075, 0.0025), (0.0175, 0.0125), (0.0525, 0.0475)):
        rejected = [p_value(_drops(rng, 1500, worse, better), 0.005, 0.9, seed=i) <= 0.1 for i in range(300)]
        assert np.mean(rejected) <= 0.1 + 3 * np.sqrt(0.1 * 0.9 / 300), (worse, better)
    worse = [p_value(_drops(rng, 3000, 0.03, 0.01), 0.005, 0.9, seed=i) <= 0.1 for i in range(100)]
    assert np.mean(worse) == 0.0  # a drop of 2 points is never certified as at most 0.5


@pytest.mark.parametrize("test", sorted(DROP_TESTS))
def test_each_test_certifies_a_safe_point_given_enough_images(test):
    p_value, rng = DROP_TESTS[test], np.random.default_rng(1)
    # no true drop, 2% discordant: a 0.5-point target needs thousands of images, as the docs say
    few = np.mean([p_value(_drops(rng, 1000, 0.01, 0.01), 0.005, 0.9, seed=i) <= 0.1 for i in range(50)])
    many = np.mean([p_value(_drops(rng, 10000, 0.01, 0.01), 0.005, 0.9, seed=i) <= 0.1 for i in range(50)])
    assert few < 0.5 and many > 0.9
    assert p_value(np.zeros(2000, int), 0.005, 0.9) < 0.01  # never disagreeing with the final exit
    assert p_value(np.zeros(0, int), 0.005, 0.9) == 1.0
    assert p_value(np.r_[np.ones(10), np.zeros(990)].astype(int), 0.005, 0.9) > 0.5  # an observed drop of 1 point: no evidence


def test_the_exact_test_is_more_powerful_than_betting():
    """3,000 certify images, 5% discordant, no true drop: the same samples through both tests."""
    rng = np.random.default_rng(6)
    samples = [_drops(rng, 3000, 0.025, 0.025) for _ in range(150)]
    exact = np.mean([exact_p_value(d, 0.005, 0.9) <= 0.1 for d in samples])
    betting = np.mean([DROP_TESTS["betting"](d, 0.005, 0.9, seed=i) <= 0.1 for i, d in enumerate(samples)])
    assert exact >= betting + 0.1 and exact > 0.4


def test_the_score_statistic_is_mcnemars_at_a_zero_target():
    assert score_statistic(30, 10, 1000, 0.0) == pytest.approx((10 - 30) / math.sqrt(40))
    assert score_statistic(10, 30, 1000, 0.0) == pytest.approx(20 / math.sqrt(40))
    # a larger target makes the same counts stronger evidence that the drop is below it
    assert score_statistic(10, 30, 1000, 0.005) > score_statistic(10, 30, 1000, 0.0)


def _brute_force_exact_p(drops, target, confidence, grid):
    """The exact test's p-value by enumerating every (lost, saved) count with math.comb: the largest tail over
    `grid` values of P(saved) inside the same Clopper-Pearson interval, plus its error."""
    n, lost, saved = len(drops), int((drops == 1).sum()), int((drops == -1).sum())
    gamma = (1 - confidence) / 100
    observed = score_statistic(lost, saved, n, target)

    def binomial_tail(k, p):  # P(X >= k), X ~ Bin(n, p)
        return sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))

    low = 0.0 if saved == 0 else _bisect(lambda p: binomial_tail(saved, p), gamma / 2)
    high = min(_bisect(lambda p: binomial_tail(saved + 1, p), 1 - gamma / 2), (1 - target) / 2)
    extreme = [(a, b) for a in range(n + 1) for b in range(n - a + 1) if score_statistic(a, b, n, target) >= observed - 1e-9]
    worst = 0.0
    for p_saved in np.linspace(max(low, 1e-12), high, grid):
        p_lost = p_saved + target
        tail = sum(math.comb(n, a) * math.comb(n - a, b) * p_lost ** a * p_saved ** b * (1 - p_lost - p_saved) ** (n - a - b)
                   for a, b in extreme)
        worst = max(worst, tail)
    return min(1.0, worst + gamma)


def _bisect(increasing, level):
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if increasing(middle) < level else (low, middle)
    return (low + high) / 2


@pytest.mark.parametrize("lost,saved,target", [(0, 0, 0.05), (2, 1, 0.05), (1, 4, 0.05), (5, 5, 0.05),
                                               (5, 1, 0.5), (0, 0, 0.7), (3, 0, 0.9)])
def test_the_exact_p_value_matches_enumerating_every_outcome(lost, saved, target):
    """Large targets included: there the nuisance interval reaches P(lost) + P(saved) = 1, where every image
    changes and the trinomial's third term is 0 ** 0."""
    drops = np.r_[np.ones(lost), -np.ones(saved), np.zeros(40 - lost - saved)].astype(int)
    expected = _brute_force_exact_p(drops, target, 0.9, grid=200)
    assert exact_p_value(drops, target, 0.9) == pytest.approx(expected, abs=2e-3)
    if target >= 0.5:  # an observed drop far below the target is strong evidence against H0
        assert exact_p_value(drops, target, 0.9) < 0.01


@pytest.mark.parametrize("test", sorted(DROP_TESTS))
def test_images_needed_is_where_the_test_starts_to_pass(test):
    p_value = DROP_TESTS[test]
    drops = _drops(np.random.default_rng(2), 1000, 0.012, 0.009)  # a drop of 0.2 points on the search half
    needed = images_needed(drops, 0.5, 0.9, test=test)
    assert needed is not None and needed > 1000
    assert p_value(np.resize(drops, needed), 0.005, 0.9) <= 0.1 < p_value(np.resize(drops, needed // 2), 0.005, 0.9)
    assert images_needed(_drops(np.random.default_rng(3), 1000, 0.02, 0.0), 0.5, 0.9, test=test) is None  # a 2-point drop: never


def test_fixed_sequence_stops_at_the_first_failure():
    # 3 exits, 400 images (3 times over); exit 1 is right on the first 200 only, exit 2 on all but 20 of the others
    correct = np.ones((3, 400), bool)
    correct[0, 200:] = False
    correct[1, 380:] = False
    scores = np.vstack([np.r_[np.full(200, 0.9), np.full(200, 0.1)], np.r_[np.full(380, 0.9), np.full(20, 0.5)], np.ones(400)])
    correct, scores = np.tile(correct, 3), np.tile(scores, 3)
    costs = np.array([0.3, 0.6, 1.05])
    safe = np.array([0.95, 0.95])  # nobody leaves early: drop 0
    fine = np.array([0.5, 0.95])  # exit 1 takes its 200 right images: drop 0
    bad = np.array([0.5, 0.4])  # exit 2 also takes its 20 wrong ones: drop 5 points
    cheap = np.array([0.05, 0.95])  # exit 1 takes everything: drop 50 points
    points = [(t, outcome(scores, correct, costs, t)) for t in (safe, fine, bad, fine)]
    result = certify_in_sequence(points, scores, correct, costs, target_drop=1.0, confidence=0.9)
    assert np.array_equal(result.thresholds, fine) and result.p_value <= 0.1
    assert len(result.tested) == 3 and result.tested[2][2] > 0.1  # the 4th point is never tested, though it would pass
    assert result.certify.cost == pytest.approx(outcome(scores, correct, costs, fine).cost)
    none = certify_in_sequence([(cheap, outcome(scores, correct, costs, cheap))], scores, correct, costs, 1.0, 0.9)
    assert none.thresholds is None and none.p_value is None and len(none.tested) == 1
    assert list(signed_drops(correct, assign_exits(scores, bad))[375:385]) == [0] * 5 + [1] * 5
    assert signed_drops(correct, assign_exits(scores, bad)).sum() == 60


def _population(rng, n, exits=3):
    """Synthetic multi-exit outcomes: a latent difficulty per image; later exits are right more often and
    every exit's score falls with difficulty (noisily)."""
    difficulty = rng.normal(size=n)
    skill = np.linspace(0.0, 1.2, exits)[:, None]
    correct = difficulty[None] + 0.6 * rng.normal(size=(exits, n)) < skill
    scores = 1.0 / (1.0 + np.exp(-(skill - difficulty[None] + 0.5 * rng.normal(size=(exits, n)))))
    return scores, correct


def test_the_frontier_runs_from_safest_to_cheapest():
    scores, correct = _population(np.random.default_rng(4), 2000)
    costs = np.array([0.3, 0.65, 1.05])
    points = frontier(scores, correct, costs, target_drop=2.0)
    cost = [p.cost for _, p in points]
    assert len(set(cost)) == len(cost) and cost == sorted(cost, reverse=True)  # dearest first, each cheaper than the last
    # ahead of the ladder: its safest point (the search at drop 0) with thresholds raised toward never-exit
    safest, _ = calibrate(scores, correct, costs, target_drop=0.0)
    start = next(k for k, (t, _) in enumerate(points) if np.array_equal(t, safest))
    safer, ladder = points[:start], points[start:]
    assert 2 <= len(safer) <= len(SAFER_FRACTIONS)
    assert all(any(np.allclose(t, safest + f * (1.0 - safest)) for f in SAFER_FRACTIONS) for t, _ in safer)
    accuracy = [p.accuracy for _, p in ladder]
    assert len(ladder) >= 3 and accuracy == sorted(accuracy, reverse=True)
    assert len(set(accuracy)) == len(accuracy)  # no ladder point that a cheaper one matches
    final = 100 * correct[-1].mean()
    assert final - accuracy[0] <= 1e-9 and final - accuracy[-1] <= 2.0 + 1e-9


def test_the_promise_survives_the_search_on_new_data():
    """10 validation draws: search on one half, certify on the other, then measure on 20k new images.
    The certified point may exceed the target on new data in at most about 1 - confidence of the draws."""
    rng = np.random.default_rng(5)
    costs, target, confidence = np.array([0.3, 0.65, 1.05]), 2.0, 0.9
    test_scores, test_correct = _population(rng, 20000)
    exceeded, certified = 0, 0
    for draw in range(10):
        scores, correct = _population(rng, 3000)
        search, certify = split_halves(np.zeros(3000, int), seed=draw)
        points = frontier(scores[:, search], correct[:, search], costs, target)
        result = certify_in_sequence(points, scores[:, certify], correct[:, certify], costs, target, confidence)
        if result.thresholds is None:
            continue
        certified += 1
        on_test = outcome(test_scores, test_correct, costs, result.thresholds)
        exceeded += 100 * test_correct[-1].mean() - on_test.accuracy > target
        assert result.certify.cost < 1.0  # not only the plain model
    assert certified >= 8 and exceeded <= 2  # 2 of 10: the 10% level plus binomial slack


def test_split_halves_are_disjoint_stratified_and_seeded():
    labels = np.repeat(np.arange(5), [10, 11, 12, 3, 1])
    search, certify = split_halves(labels, seed=3)
    assert len(np.intersect1d(search, certify)) == 0 and len(search) + len(certify) == len(labels)
    assert [int((labels[search] == c).sum()) for c in range(5)] == [5, 6, 6, 2, 1]
    assert np.array_equal(split_halves(labels, seed=3)[0], search) and not np.array_equal(split_halves(labels, seed=4)[0], search)


def test_confidence_levels_are_checked():
    check_confidence(None)
    check_confidence(0.9)
    for bad in (0.3, 1.0, 95):
        with pytest.raises(ValueError, match=r"confidence must be a probability in \[0.5, 1\)"):
            check_confidence(bad)
    with pytest.raises(ValueError, match="applies to a target drop"):
        check_confidence(0.9, "budget")
    with pytest.raises(ValueError, match="a certified target drop is in accuracy points, from 0 up to 100"):
        check_confidence(0.9, "target_drop", -0.5)
    with pytest.raises(ValueError, match="unknown certification test 'mcnemar'; choose one of exact, betting"):
        check_confidence(None, test="mcnemar")
    assert calibrate(np.ones((2, 3)), np.ones((2, 3), bool), np.array([0.5, 1.0]), target_drop=0.0)[0][0] <= NEVER
