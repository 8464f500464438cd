"""Threshold search, the oracle, policies and temperature scaling on small hand-checked cases."""
import math

import numpy as np
import pytest

from edgekd.runtime.policies import POLICIES, fit_temperature, log_softmax, softmax
from edgekd.runtime.trail import ExitTrail
from edgekd.runtime.thresholds import (NEVER, assign_exits, binomial_se, calibrate, candidates, drop_se, hindsight, oracle, oracle_cost_at,
                                      outcome, sweep_one)

# 3 exits, 4 samples. Exit 1 is right on samples 0 and 1 and sure of both; exit 2 also on 2; exit 3 on all but 3.
SCORES = np.array([[0.9, 0.8, 0.3, 0.2],
                   [0.95, 0.9, 0.85, 0.3],
                   [0.99, 0.99, 0.9, 0.4]])
CORRECT = np.array([[1, 1, 0, 0],
                    [1, 1, 1, 0],
                    [1, 1, 1, 0]], bool)
COSTS = np.array([0.3, 0.6, 1.05])


def test_exits_and_outcome_by_hand():
    np.testing.assert_array_equal(assign_exits(SCORES, np.array([0.75, 0.8])), [0, 0, 1, 2])
    result = outcome(SCORES, CORRECT, COSTS, np.array([0.75, 0.8]))
    assert result.accuracy == 75.0 and result.cost == pytest.approx((0.3 + 0.3 + 0.6 + 1.05) / 4)
    assert result.exit_counts == (2, 1, 1)
    assert outcome(SCORES, CORRECT, COSTS, np.array([NEVER, NEVER])).exit_counts == (0, 0, 4)


def test_target_drop_finds_the_cheapest_point_that_keeps_accuracy():
    thresholds, result = calibrate(SCORES, CORRECT, COSTS, target_drop=0.0)
    assert result.accuracy == 75.0  # the final exit's accuracy
    # Samples 0, 1 leave at exit 1 and sample 2 at exit 2. Sample 3 is wrong everywhere, but it cannot
    # leave at exit 1 without sample 2 (higher score there) leaving too; the cheapest is exit 2 (t2 <= 0.3).
    assert result.cost == pytest.approx((0.3 + 0.3 + 0.6 + 0.6) / 4)
    assert outcome(SCORES, CORRECT, COSTS, thresholds) == result


def test_the_drop_is_measured_from_the_final_exit_alone_where_the_final_answer_is_an_ensemble():
    """Sample 3 is wrong at every exit alone, but the ensemble the final exit answers with gets it right."""
    answered = CORRECT.copy()
    answered[-1, 3] = True
    final_alone = CORRECT[-1]
    thresholds, result = calibrate(SCORES, answered, COSTS, target_drop=0.0, reference=final_alone)
    assert result.accuracy == 75.0  # the plain model's accuracy is the target, not the ensemble's
    assert outcome(SCORES, answered, COSTS, thresholds, final_alone) == result
    _, against_the_ensemble = calibrate(SCORES, answered, COSTS, target_drop=0.0)  # 100%: every sample where it is right
    assert against_the_ensemble.accuracy == 100.0 and against_the_ensemble.cost == pytest.approx((0.3 + 0.3 + 0.6 + 1.05) / 4)
    assert result.cost < against_the_ensemble.cost
    never = np.array([NEVER, NEVER])
    gained = outcome(SCORES, answered, COSTS, never, final_alone)
    assert gained.accuracy == 100.0 and gained.drop_se == pytest.approx(drop_se(final_alone, answered[-1]))
    assert gained.drop_se > 0 == outcome(SCORES, answered, COSTS, never).drop_se


def test_budget_finds_the_best_accuracy_within_cost():
    _, result = calibrate(SCORES, CORRECT, COSTS, budget=0.3)
    assert result.cost <= 0.3 and result.accuracy == 50.0  # all at exit 1
    with pytest.raises(ValueError, match="within budget"):
        calibrate(SCORES, CORRECT, COSTS, budget=0.2)
    with pytest.raises(ValueError, match="exactly one"):
        calibrate(SCORES, CORRECT, COSTS)


def test_margin_demands_more_accuracy():
    _, without = calibrate(SCORES, CORRECT, COSTS, target_drop=25.0)
    _, with_margin = calibrate(SCORES, CORRECT, COSTS, target_drop=25.0, margin=25.0)
    assert without.accuracy == 50.0 and with_margin.accuracy == 75.0 and with_margin.cost > without.cost


def test_one_threshold_swept_at_once_matches_each_outcome():
    rng = np.random.default_rng(0)
    scores, correct = rng.random((4, 300)), rng.random((4, 300)) < np.array([[0.5], [0.6], [0.7], [0.8]])
    costs = np.array([0.2, 0.45, 0.7, 1.06])
    held = np.array([0.8, 0.6, 0.9])
    for k, values in enumerate(candidates(scores, count=21)):
        accuracy, cost = sweep_one(scores, correct, costs, held, k, values)
        for value, a, c in zip(values, accuracy, cost):
            trial = held.copy()
            trial[k] = value
            expected = outcome(scores, correct, costs, trial)
            assert (a, c) == (expected.accuracy, expected.cost)  # exactly: the search compares them for ties


def test_oracle_and_its_cost_at_a_lower_accuracy():
    best = oracle(CORRECT, COSTS)
    assert best.accuracy == 75.0 and best.cost == pytest.approx((0.3 + 0.3 + 0.6 + 0.3) / 4)
    # At 50%: drop the dearest correct sample (sample 2, 0.6) to exit 1.
    assert oracle_cost_at(CORRECT, COSTS, 50.0) == pytest.approx(0.3)
    assert oracle_cost_at(CORRECT, COSTS, 75.0) == pytest.approx(best.cost)


def test_hindsight_is_the_cheapest_point_on_the_same_samples_at_an_accuracy_floor():
    never = outcome(SCORES, CORRECT, COSTS, np.array([NEVER, NEVER]))  # 75% at 1.05
    # In hindsight the same 75% costs (0.3 + 0.3 + 0.6 + 0.6) / 4, and 50% costs 0.3 (everything at exit 1).
    assert hindsight(SCORES, CORRECT, COSTS, 75.0, known=never) == calibrate(SCORES, CORRECT, COSTS, target_drop=0.0)[1]
    assert hindsight(SCORES, CORRECT, COSTS, 75.0).cost == pytest.approx(0.45)
    assert hindsight(SCORES, CORRECT, COSTS, 50.0).cost == pytest.approx(0.3)
    # A known point already at the cheapest is kept; a floor nothing reaches gives None.
    cheapest = outcome(SCORES, CORRECT, COSTS, np.array([0.0, 0.0]))
    assert hindsight(SCORES, CORRECT, COSTS, cheapest.accuracy, known=cheapest) == cheapest
    assert hindsight(SCORES, CORRECT, COSTS, 80.0) is None
    # On random scores: cheaper than a given point at its accuracy, dearer than the oracle.
    rng = np.random.default_rng(1)
    scores, correct = rng.random((4, 400)), rng.random((4, 400)) < np.array([[0.5], [0.6], [0.7], [0.8]])
    costs = np.array([0.2, 0.45, 0.7, 1.06])
    given = outcome(scores, correct, costs, np.array([0.9, 0.8, 0.7]))
    found = hindsight(scores, correct, costs, given.accuracy, known=given)
    assert found.accuracy >= given.accuracy and found.cost < given.cost
    assert found.cost >= oracle_cost_at(correct, costs, found.accuracy)


def test_policies_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(POLICIES.get("max_prob")(probs), [0.7, 1 / 3])
    np.testing.assert_allclose(POLICIES.get("margin")(probs), [0.5, 0.0], atol=1e-12)
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(POLICIES.get("entropy")(probs), [1 - h / math.log(3), 0.0], atol=1e-9)


def test_exit_trail_running_ensemble_and_agreement_by_hand():
    logits = [np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])),
              np.log(np.array([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])),
              np.log(np.array([[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]))]
    max_prob = POLICIES.get("max_prob")
    trail = ExitTrail(max_prob, [1.0, 1.0, 1.0], running_ensemble=True)
    first, second, third = (trail.step(z, k) for k, z in enumerate(logits))
    np.testing.assert_allclose(first[0], np.exp(logits[0]), rtol=1e-12)
    geometric = np.sqrt(np.exp(logits[0]) * np.exp(logits[1]))  # the normalized product of exits 1 and 2
    geometric /= geometric.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(second[0], geometric, rtol=1e-12)
    np.testing.assert_allclose(second[1], geometric.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(third[0], np.exp(logits[2]), rtol=1e-12)  # the final exit answers alone
    agreeing = ExitTrail(max_prob, [1.0, 1.0, 1.0], agreement=True)
    scores = [agreeing.step(z, k)[1] for k, z in enumerate(logits)]
    np.testing.assert_allclose(scores[0], [0.6, 0.5])  # exit 1 has nothing to agree with
    np.testing.assert_allclose(scores[1], [0.0, 0.8])  # sample 0: exit 2 says class 1 where exit 1 said 0
    np.testing.assert_allclose(scores[2], [0.0, 0.0])  # both changed their minds at exit 3
    compacted = ExitTrail(max_prob, [1.0, 1.0, 1.0], running_ensemble=True, agreement=True)
    compacted.step(logits[0], 0)
    compacted.keep(np.array([False, True]))  # sample 0 left at exit 1
    probs, score = compacted.step(logits[1][1:], 1)
    np.testing.assert_allclose(probs, geometric[1:], rtol=1e-12)
    np.testing.assert_allclose(score, geometric[1:].max(axis=1), rtol=1e-12)  # exit 1 and 2 agree on class 1


@pytest.mark.parametrize("running_ensemble", [False, True])
def test_exit_trail_final_ensemble_by_hand(running_ensemble):
    logits = [np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])),
              np.log(np.array([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])),
              np.log(np.array([[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]))]
    temperatures = [1.0, 2.0, 0.5]
    margin = POLICIES.get("margin")
    trail = ExitTrail(margin, temperatures, running_ensemble=running_ensemble, final_ensemble=True)
    steps = [trail.step(z, k) for k, z in enumerate(logits)]
    scaled = [softmax(z, t) for z, t in zip(logits, temperatures)]
    geometric = np.cbrt(scaled[0] * scaled[1] * scaled[2])
    geometric /= geometric.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(steps[2][0], geometric, rtol=1e-12)
    np.testing.assert_allclose(steps[2][1], margin(geometric), rtol=1e-12)  # scored on what it answers
    if not running_ensemble:  # the early exits answer alone, as without the option
        for k in (0, 1):
            np.testing.assert_allclose(steps[k][0], scaled[k], rtol=1e-12)


def test_log_softmax_is_exact_where_softmax_underflows():
    logits = np.array([[0.0, -2000.0], [3.0, 1.0]])
    np.testing.assert_allclose(log_softmax(logits), [[0.0, -2000.0], [-np.log1p(np.exp(-2.0)), -2.0 - np.log1p(np.exp(-2.0))]],
                               rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_softmax(logits, 2.0)), softmax(logits, 2.0), rtol=1e-12)


def test_temperature_fit_recovers_the_true_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 10))
    probs = softmax(logits, 2.5)  # labels drawn from the logits at T = 2.5
    labels = np.array([rng.choice(10, p=p) for p in probs])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)


def test_binomial_standard_error():
    assert binomial_se(90.0, 2500) == pytest.approx(100 * math.sqrt(0.9 * 0.1 / 2500))


def test_paired_drop_standard_error_counts_only_disagreements():
    final = np.array([1] * 90 + [0] * 10, bool)
    same = final.copy()
    assert drop_se(final, same) == 0.0  # the exits taken agree with the final exit everywhere: no noise
    taken = final.copy()
    taken[:4] = False  # 4 of 100 images lost: differences 1,1,1,1 and 96 zeros
    diff = np.array([1.0] * 4 + [0.0] * 96)
    assert drop_se(final, taken) == pytest.approx(100 * diff.std(ddof=1) / 10)
    assert drop_se(final, taken) < binomial_se(86.0, 100)
