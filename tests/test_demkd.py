"""DE-MKD: entropy weights (sum to 1, favour the confident teacher) and golden values of its terms."""
import math

import pytest
import torch

from golden import softmax
from edgekd.config import MethodConfig
from edgekd.methods import build_method
from edgekd.methods.demkd import teacher_weights
from edgekd.models import ExitOutputs, create_model


def _entropy(logits):
    return -sum(p * math.log(p) for p in softmax(logits))


CONFIDENT = [[6.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0]]
UNSURE = [[0.5, 0.4, 0.3, 0.2], [0.1, 0.0, 0.2, 0.1]]
MIDDLE = [[2.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.5, 0.0]]


@pytest.mark.parametrize("weighting", ["entropy_softmax", "ebkd", "ca_mkd"])
def test_weights_sum_to_one_per_sample_and_favour_the_confident_teacher(weighting):
    logits = [torch.tensor(CONFIDENT), torch.tensor(UNSURE), torch.tensor(MIDDLE)]
    weights = teacher_weights(logits, torch.tensor([0, 1]), weighting)
    assert weights.shape == (3, 2)
    torch.testing.assert_close(weights.sum(0), torch.ones(2))
    assert (weights >= 0).all()
    assert (weights[0] > weights[2]).all() and (weights[2] > weights[1]).all()


def test_entropy_softmax_weights_golden_values():
    weights = teacher_weights([torch.tensor(CONFIDENT), torch.tensor(UNSURE)], torch.tensor([0, 1]), "entropy_softmax")
    for b in range(2):
        h = [_entropy(CONFIDENT[b]), _entropy(UNSURE[b])]
        expected = softmax([-x for x in h])
        assert weights[:, b].tolist() == pytest.approx(expected, rel=1e-5)


def _dkd_terms(zs, zt, y, t):
    ps, pt = softmax(zs, t), softmax(zt, t)
    tckd = pt[y] * math.log(pt[y] / ps[y]) + (1 - pt[y]) * math.log((1 - pt[y]) / (1 - ps[y]))
    qs = [p / (1 - ps[y]) for c, p in enumerate(ps) if c != y]
    qt = [p / (1 - pt[y]) for c, p in enumerate(pt) if c != y]
    return tckd, sum(a * math.log(a / b) for a, b in zip(qt, qs))


def test_logit_term_golden_value_with_per_sample_weights():
    student = create_model("vgg8", num_classes=4, width=0.125)
    teachers = [create_model("resnet20", num_classes=4, exits="last", width=0.25) for _ in range(2)]
    method = build_method(MethodConfig(name="demkd", temperature=2.0, alpha=1.0, beta=3.0, warmup=4, gamma=0.0), student, teachers)
    zs = [[0.3, -0.2, 0.8, 0.0], [1.0, 0.5, -0.5, 0.2]]
    y = [0, 1]
    out = ExitOutputs([torch.randn(2, 4), torch.tensor(zs)], [])
    terms = method.loss(out, [ExitOutputs([torch.tensor(CONFIDENT)], []), ExitOutputs([torch.tensor(UNSURE)], [])],
                        torch.tensor(y), epoch=2, step=0, plan=method.everything())
    total = 0.0
    for b in range(2):
        h = [_entropy(CONFIDENT[b]), _entropy(UNSURE[b])]
        w = softmax([-x for x in h])
        for k, zt in enumerate((CONFIDENT[b], UNSURE[b])):
            tckd, nckd = _dkd_terms(zs[b], zt, y[b], 2.0)
            total += w[k] * 4.0 * (1.0 * tckd + 3.0 * nckd)
    assert terms["dkd"].item() == pytest.approx(0.5 * total / 2, rel=1e-4)  # warm-up: epoch 2 of 4
    assert "feat" not in terms


def test_feature_term_uses_penultimate_stages_of_different_teachers():
    student = create_model("vgg8", num_classes=10, width=0.125)
    teachers = [create_model("wrn_16_2", num_classes=10, exits="last", width=0.5),
                create_model("resnet8x4", num_classes=10, exits="last", width=0.25)]
    method = build_method(MethodConfig(name="demkd", gamma=2.0), student, teachers)
    images, target = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        teacher_outs = [t.eval()(images) for t in teachers]
    terms = method.loss(student(images), teacher_outs, target, epoch=1, step=0, plan=method.everything())
    assert terms["feat"].item() > 0
    terms["feat"].backward()
    assert all(p.grad is not None for p in method.regressors.parameters())
