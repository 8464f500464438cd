"""OtO: golden loss values (teacher exit k -> student exit k) and the exit-count check."""
import math

import pytest
import torch

from golden import kl, softmax
from edgekd.config import MethodConfig
from edgekd.errors import EdgekdError
from edgekd.methods import build_method
from edgekd.models import ExitOutputs, create_model


def test_oto_loss_golden_values_pair_exits_one_to_one():
    student = create_model("resnet20", num_classes=3)
    teacher = create_model("resnet32", num_classes=3)
    method = build_method(MethodConfig(name="oto", temperature=2.0, alpha=0.7), student, [teacher])
    s = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    t = [[0.5, 0.1, 0.0], [0.0, 1.5, -1.0], [0.2, 3.0, -1.0]]
    y = 1
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in s], []), [ExitOutputs([torch.tensor([r]) for r in t], [])],
                        torch.tensor([y]), epoch=1, step=0, plan=method.everything())
    kd = sum(4.0 * kl(softmax(tk, 2.0), softmax(sk, 2.0)) for sk, tk in zip(s, t))
    ce = sum(-math.log(softmax(r)[y]) for r in s)
    assert terms["kd"].item() == pytest.approx(0.7 * kd, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(0.3 * ce, rel=1e-5)
    # Against MSKD, where every exit learns from the teacher's final exit, the terms differ.
    mskd = build_method(MethodConfig(name="mskd", temperature=2.0, alpha=0.7), student, [teacher])
    other = mskd.loss(ExitOutputs([torch.tensor([r]) for r in s], []), [ExitOutputs([torch.tensor([r]) for r in t], [])],
                      torch.tensor([y]), epoch=1, step=0, plan=mskd.everything())
    assert other["kd"].item() != pytest.approx(terms["kd"].item(), rel=1e-3)


def test_oto_needs_a_teacher_with_as_many_exits():
    student = create_model("resnet18", num_classes=10, width=0.125)
    teacher = create_model("resnet34", num_classes=10, exits="last", width=0.125)
    with pytest.raises(EdgekdError, match="teacher has 1 exit"):
        build_method(MethodConfig(name="oto"), student, [teacher])
