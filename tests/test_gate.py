"""The learned exit gate (runtime.gate): its features by hand, its fit against known weights, and that it
scores alike through compaction and beats a single score where the drop event depends on agreement."""
import numpy as np
import pytest

from edgekd.runtime.gate import GATE_FEATURES, fit_gate, gate_features, gate_scores
from edgekd.runtime.policies import POLICIES
from edgekd.runtime.score_quality import auroc
from edgekd.runtime.trail import ExitTrail


def test_features_by_hand():
    own = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    ensemble = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]])
    features = gate_features(own, np.log(own), ensemble, np.array([True, False]))
    assert features.shape == (2, len(GATE_FEATURES))
    np.testing.assert_allclose(features[:, 0], [0.7, 0.4])  # max_prob
    np.testing.assert_allclose(features[:, 1], [0.5, 0.0], atol=1e-12)  # margin
    np.testing.assert_allclose(features[:, 2], POLICIES.get("entropy")(own), rtol=1e-12)  # 1 - H(p) / log C
    np.testing.assert_allclose(features[:, 3:], [[0.5, 0.2, 1.0], [0.8, 0.7, 0.0]])  # the ensemble's, then agreement


def test_fit_recovers_the_weights_that_drew_the_labels():
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 1, size=(40000, 3))
    true = np.array([3.0, -2.0, 1.0, -0.5])  # w, then the bias
    safe = rng.uniform(size=len(features)) < gate_scores(features, true)
    np.testing.assert_allclose(fit_gate(features, safe, l2=0.0), true, atol=0.15)
    assert np.isfinite(fit_gate(features, np.ones(len(features), bool))).all()  # no drop event at all: finite weights


def _two_exits(n, rng):
    """Logits of 2 early exits and a final one over 10 classes. The drop event at exit 2 is likely exactly
    where exits 1 and 2 disagree, whatever exit 2's confidence says."""
    labels = rng.integers(0, 10, n)
    sharp = rng.uniform(1.0, 4.0, size=(3, n))
    logits = rng.normal(0, 1, size=(3, n, 10))
    agree = rng.uniform(size=n) < 0.6
    first = np.where(agree, labels, (labels + 1) % 10)
    second = np.where(agree | (rng.uniform(size=n) < 0.3), labels, (labels + 2) % 10)
    logits[0, np.arange(n), first] += sharp[0]
    logits[1, np.arange(n), second] += sharp[1]
    logits[2, np.arange(n), labels] += 4.0
    return list(logits.astype(np.float32)), labels


def _walk(trail, logits):
    return [trail.step(z, k) for k, z in enumerate(logits)]


def test_the_gate_beats_a_single_score_on_held_out_images_and_scores_alike_through_compaction():
    rng = np.random.default_rng(1)
    fit_logits, fit_labels = _two_exits(6000, rng)
    test_logits, test_labels = _two_exits(6000, rng)
    max_prob = POLICIES.get("max_prob")
    looking = ExitTrail(max_prob, [1.0] * 3)
    weights = []
    for k, z in enumerate(fit_logits[:-1]):
        probs, features = looking.look(z, k)
        weights.append(fit_gate(features, (probs.argmax(1) == fit_labels) | (fit_logits[-1].argmax(1) != fit_labels)))
    gated = _walk(ExitTrail(max_prob, [1.0] * 3, gate=weights), test_logits)
    plain = _walk(ExitTrail(max_prob, [1.0] * 3), test_logits)
    zeroed = _walk(ExitTrail(max_prob, [1.0] * 3, agreement=True), test_logits)  # the fixed rule the gate weighs instead
    final_right = test_logits[-1].argmax(1) == test_labels
    event = (gated[1][0].argmax(1) != test_labels) & final_right  # at exit 2
    assert auroc(gated[1][1], event) > auroc(plain[1][1], event) + 0.05
    assert auroc(gated[1][1], event) > auroc(zeroed[1][1], event) + 0.02
    assert 0.0 < gated[1][1].min() and gated[1][1].max() < 1.0
    compacted = ExitTrail(max_prob, [1.0] * 3, gate=weights)
    compacted.step(test_logits[0], 0)
    kept = np.arange(len(test_labels)) % 3 != 0
    compacted.keep(kept)
    probs, scores = compacted.step(test_logits[1][kept], 1)
    np.testing.assert_array_equal(scores, gated[1][1][kept])
    np.testing.assert_array_equal(probs, gated[1][0][kept])


@pytest.mark.parametrize("running_ensemble", [False, True])
def test_the_final_exit_answers_alone_with_a_gate(running_ensemble):
    rng = np.random.default_rng(2)
    logits, _ = _two_exits(50, rng)
    weights = [np.ones(len(GATE_FEATURES) + 1)] * 2
    final_probs, final_scores = _walk(ExitTrail(POLICIES.get("margin"), [1.0] * 3, running_ensemble, gate=weights), logits)[2]
    plain_probs, plain_scores = _walk(ExitTrail(POLICIES.get("margin"), [1.0] * 3), logits)[2]
    np.testing.assert_array_equal(final_probs, plain_probs)
    np.testing.assert_array_equal(final_scores, plain_scores)
