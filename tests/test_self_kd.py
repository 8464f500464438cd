"""self_kd: golden loss values (the final exit teaches the earlier ones) and where its gradients go."""
import math

import pytest
import torch

from golden import kl, softmax
from edgekd.config import MethodConfig
from edgekd.errors import EdgekdError
from edgekd.methods import build_method
from edgekd.models import ExitOutputs, create_model


def _soft_ce(p: list[float], q: list[float]) -> float:
    """-sum p log q: the soft term of BYOT's official train.py (its `CrossEntropy`)."""
    return -sum(a * math.log(b) for a, b in zip(p, q))


def test_self_kd_matches_the_official_byot_loss():
    # pytorch-self-distillation-final/train.py: loss = CE(deepest) + sum over shallower exits of
    # loss_coefficient * CrossEntropy(z_k/T, z_K/T) + (1 - loss_coefficient) * CE(z_k); T=3, 0.3, no T^2.
    method = build_method(MethodConfig(name="self_kd"), create_model("resnet20", num_classes=3), [])
    assert (method.params.form, method.params.alpha, method.params.temperature) == ("official", 0.3, 3.0)
    z = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    y = 1
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in z], []), [], torch.tensor([y]), epoch=1, step=0,
                        plan=method.everything())
    ce = [-math.log(softmax(r)[y]) for r in z]
    official = ce[-1] + sum(0.3 * _soft_ce(softmax(z[-1], 3.0), softmax(r, 3.0)) + 0.7 * c for r, c in zip(z[:-1], ce[:-1]))
    assert sum(terms.values()).item() == pytest.approx(official, rel=1e-6)
    assert terms["self_kd"].item() == pytest.approx(0.3 * sum(_soft_ce(softmax(z[-1], 3.0), softmax(r, 3.0)) for r in z[:-1]), rel=1e-6)


def test_t_squared_form_is_a_named_option_with_its_own_alpha():
    method = build_method(MethodConfig(name="self_kd", form="t_squared", temperature=2.0), create_model("resnet20", num_classes=3), [])
    assert method.params.alpha == 0.1  # the reimplementation's default for this form
    z = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in z], []), [], torch.tensor([1]), epoch=1, step=0,
                        plan=method.everything())
    soft = sum(_soft_ce(softmax(z[-1], 2.0), softmax(r, 2.0)) for r in z[:-1])
    assert terms["self_kd"].item() == pytest.approx(0.1 * 4.0 * soft, rel=1e-6)
    # same gradient as Hinton's T^2 KL: the two differ by the teacher's entropy, a constant
    assert soft - sum(kl(softmax(z[-1], 2.0), softmax(r, 2.0)) for r in z[:-1]) == pytest.approx(
        2 * -sum(p * math.log(p) for p in softmax(z[-1], 2.0)), rel=1e-9)


def test_self_kd_final_exit_learns_from_labels_only():
    method = build_method(MethodConfig(name="self_kd"), create_model("resnet20", num_classes=3), [])
    logits = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    terms = method.loss(ExitOutputs(logits, []), [], torch.tensor([0, 1, 2, 0]), epoch=1, step=0, plan=method.everything())
    terms["self_kd"].backward()
    assert logits[-1].grad is None or logits[-1].grad.abs().max() == 0  # the soft targets are detached
    assert all(z.grad.abs().max() > 0 for z in logits[:-1])


def test_self_kd_takes_no_teacher():
    student = create_model("resnet20", num_classes=3)
    with pytest.raises(EdgekdError, match="needs exactly 0 teacher"):
        build_method(MethodConfig(name="self_kd"), student, [create_model("resnet20", num_classes=3)])
