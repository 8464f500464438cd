"""MTKD-SSR: golden values of SCD, SRD and CRD, and CRD's teacher (the next exit) receiving no gradient."""
import math

import pytest
import torch

from golden import kl, softmax
from edgekd.config import MethodConfig
from edgekd.methods import build_method
from edgekd.methods.mtkd_ssr import channel_distillation
from edgekd.models import ExitOutputs, create_model


def test_channel_distillation_golden_value():
    student = torch.tensor([[[[1.0, 3.0]], [[0.0, 2.0]]]])  # 1 x 2 channels x 1 x 2: pooled (2, 1)
    teacher = torch.tensor([[[[0.0, 0.0]], [[4.0, 4.0]]]])  # pooled (0, 4)
    assert channel_distillation(student, teacher).item() == pytest.approx(((2 - 0) ** 2 + (1 - 4) ** 2) / 2)


def test_mtkd_ssr_terms_golden_values_and_crd_gradient():
    student = create_model("resnet20", num_classes=3, width=0.25)
    teacher = create_model("resnet20", num_classes=3, width=0.5)
    method = build_method(MethodConfig(name="mtkd_ssr", temperature=2.0, scd=0.0, srd=0.5, crd=2.0), student, [teacher])
    s = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    t = [[0.5, 0.1, 0.0], [0.0, 1.5, -1.0], [0.2, 3.0, -1.0]]
    logits = [torch.tensor([r], requires_grad=True) for r in s]
    feats_s = [torch.zeros(1, c, 2, 2) for c in (4, 8, 16)]
    feats_t = [torch.zeros(1, c, 2, 2) for c in (8, 16, 32)]
    terms = method.loss(ExitOutputs(logits, feats_s), [ExitOutputs([torch.tensor([r]) for r in t], feats_t)],
                        torch.tensor([1]), epoch=1, step=0, plan=method.everything())
    srd = sum(4.0 * kl(softmax(tk, 2.0), softmax(sk, 2.0)) for sk, tk in zip(s, t))
    crd = sum(4.0 * kl(softmax(s[k + 1], 2.0), softmax(s[k], 2.0)) for k in range(2))
    assert terms["srd"].item() == pytest.approx(0.5 * srd, rel=1e-5)
    assert terms["crd"].item() == pytest.approx(2.0 * crd, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(sum(-math.log(softmax(r)[1]) for r in s), rel=1e-5)
    terms["crd"].backward()
    assert logits[2].grad is None or torch.count_nonzero(logits[2].grad) == 0  # the deepest exit only teaches
    assert torch.count_nonzero(logits[0].grad) > 0


def test_crd_from_the_final_exit():
    student = create_model("resnet20", num_classes=3, width=0.25)
    method = build_method(MethodConfig(name="mtkd_ssr", temperature=1.0, crd_source="final"), student, [student])
    s = [torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0]]), torch.tensor([[1.0, 2.0, 0.5]])]
    feats = [torch.zeros(1, c, 2, 2) for c in (4, 8, 16)]
    terms = method.loss(ExitOutputs(s, feats), [ExitOutputs(s, feats)], torch.tensor([1]), epoch=1, step=0, plan=method.everything())
    expected = sum(kl(softmax(s[2][0].tolist()), softmax(z[0].tolist())) for z in s[:2])
    assert terms["crd"].item() == pytest.approx(expected, rel=1e-5)
