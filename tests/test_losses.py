"""Golden values for the losses of the foundation methods, computed by hand here."""
import math

import pytest
import torch

from golden import softmax
from edgekd.config import MethodConfig
from edgekd.methods import build_method
from edgekd.methods.losses import kd_loss
from edgekd.models import ExitOutputs, create_model


def test_kd_loss_golden_value():
    s, t, temp = [1.0, 2.0, 0.5], [0.2, 3.0, -1.0], 4.0
    p_t, p_s = softmax(t, temp), softmax(s, temp)
    expected = temp**2 * sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s))
    got = kd_loss(torch.tensor([s]), torch.tensor([t]), temp)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kd_loss_is_a_batch_mean_and_zero_when_equal():
    a = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    assert kd_loss(a, a, 4.0).item() == pytest.approx(0.0, abs=1e-5)  # float32 rounding times T^2 = 16
    one = kd_loss(a[:1], a[1:], 2.0)
    two = kd_loss(torch.cat([a[:1], a[:1]]), torch.cat([a[1:], a[1:]]), 2.0)
    assert one.item() == pytest.approx(two.item(), rel=1e-6)


def _outputs(logit_rows):
    return ExitOutputs([torch.tensor(r) for r in logit_rows], [])


def test_ce_method_sums_every_exit():
    student = create_model("resnet20", num_classes=3)
    method = build_method(MethodConfig(name="ce"), student, [])
    logits = [[[2.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]]
    y = torch.tensor([0])
    expected = sum(-math.log(softmax(r[0])[0]) for r in logits)
    terms = method.loss(_outputs(logits), [], y, epoch=1, step=0, plan=method.everything())
    assert set(terms) == {"ce"} and terms["ce"].item() == pytest.approx(expected, rel=1e-6)


def test_kd_method_terms_golden_values():
    student = create_model("resnet20", num_classes=3)
    teacher = create_model("resnet20", num_classes=3, exits="last")
    method = build_method(MethodConfig(name="kd", temperature=2.0, alpha=0.7, gamma=0.3, early_ce=0.5), student, [teacher])
    s = [[[1.0, 0.0, 0.0]], [[0.0, 2.0, 0.0]], [[1.0, 2.0, 0.5]]]
    t = [[[0.2, 3.0, -1.0]]]
    y = torch.tensor([1])
    terms = method.loss(_outputs(s), [_outputs(t)], y, epoch=1, step=0, plan=method.everything())
    p_t, p_s = softmax(t[0][0], 2.0), softmax(s[2][0], 2.0)
    kd = 4.0 * sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s))
    assert terms["kd"].item() == pytest.approx(0.7 * kd, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(-0.3 * math.log(softmax(s[2][0])[1]), rel=1e-5)
    early = -math.log(softmax(s[0][0])[1]) - math.log(softmax(s[1][0])[1])
    assert terms["ce_early"].item() == pytest.approx(0.5 * early, rel=1e-5)


def test_kd_gradients_reach_only_the_student():
    student = create_model("resnet20", num_classes=4, width=0.5)
    teacher = create_model("resnet20", num_classes=4, exits="last").eval()
    method = build_method(MethodConfig(name="kd"), student, [teacher])
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))
    with torch.no_grad():
        t_out = teacher(x)
    sum(method.loss(student(x), [t_out], y, epoch=1, step=0, plan=method.everything()).values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_method_teacher_count_and_params_are_checked():
    from edgekd.errors import EdgekdError

    student = create_model("resnet20", num_classes=3)
    with pytest.raises(EdgekdError, match="needs exactly 1 teacher"):
        build_method(MethodConfig(name="kd"), student, [])
    with pytest.raises(EdgekdError, match="did you mean 'method.temperature'"):
        build_method(MethodConfig(name="kd", temprature=3), student, [student])
    with pytest.raises(EdgekdError, match="method.alpha"):
        build_method(MethodConfig(name="kd", alpha=-1), student, [student])
