"""self_kd: golden loss values (the final exit teaches the earlier ones) and where its gradients go."""
import math

import pytest
import torch

from golden import kl, softmax
from edgekd.config import MethodConfig
from edgekd.errors import EdgekdError
from edgekd.methods import build_method
from edgekd.models import ExitOutputs, create_model


def test_self_kd_golden_values_final_exit_teaches_the_others():
    method = build_method(MethodConfig(name="self_kd", temperature=2.0, alpha=0.4), create_model("resnet20", num_classes=3), [])
    z = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    y = 1
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in z], []), [], torch.tensor([y]), epoch=1, step=0)
    ce = [-math.log(softmax(r)[y]) for r in z]
    kd = sum(4.0 * kl(softmax(z[-1], 2.0), softmax(r, 2.0)) for r in z[:-1])
    assert terms["ce"].item() == pytest.approx(ce[-1] + 0.6 * (ce[0] + ce[1]), rel=1e-5)
    assert terms["self_kd"].item() == pytest.approx(0.4 * kd, rel=1e-5)


def test_self_kd_final_exit_learns_from_labels_only():
    method = build_method(MethodConfig(name="self_kd"), create_model("resnet20", num_classes=3), [])
    logits = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    terms = method.loss(ExitOutputs(logits, []), [], torch.tensor([0, 1, 2, 0]), epoch=1, step=0)
    terms["self_kd"].backward()
    assert logits[-1].grad is None or logits[-1].grad.abs().max() == 0  # the soft targets are detached
    assert all(z.grad.abs().max() > 0 for z in logits[:-1])


def test_self_kd_takes_no_teacher():
    student = create_model("resnet20", num_classes=3)
    with pytest.raises(EdgekdError, match="needs exactly 0 teacher"):
        build_method(MethodConfig(name="self_kd"), student, [create_model("resnet20", num_classes=3)])
