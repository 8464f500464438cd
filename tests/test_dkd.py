"""DKD: golden values by hand (ordinary and extreme logits), the identity KD = TCKD + (1 - p_t) NCKD, warm-up."""
from decimal import Decimal, localcontext

import pytest
import torch

from golden import kl, softmax
from edgekd.config import MethodConfig
from edgekd.methods import build_method
from edgekd.methods.losses import decoupled_kl, kd_loss
from edgekd.models import ExitOutputs, create_model


def test_tckd_and_nckd_golden_values():
    s, t, y, temp = [1.0, 2.0, 0.5, -0.3], [0.2, 3.0, -1.0, 0.7], 1, 2.0
    ps, pt = softmax(s, temp), softmax(t, temp)
    tckd = kl([pt[y], 1 - pt[y]], [ps[y], 1 - ps[y]])
    rest = [i for i in range(4) if i != y]
    qs = [ps[i] / (1 - ps[y]) for i in rest]
    qt = [pt[i] / (1 - pt[y]) for i in rest]
    got_t, got_n = decoupled_kl(torch.tensor([s]), torch.tensor([t]), torch.tensor([y]), temp)
    assert got_t.item() == pytest.approx(tckd, rel=1e-5)
    assert got_n.item() == pytest.approx(kl(qt, qs), rel=1e-5)


def _tckd_exact(s: list[float], t: list[float], y: int, temperature: float) -> float:
    """TCKD by its definition in 150-digit decimals: p_t from exp and sum, 1 - p_t by subtraction,
    where float32 would underflow or round p_t to 1."""
    with localcontext() as ctx:
        ctx.prec = 150

        def split(z: list[float]) -> tuple[Decimal, Decimal]:
            e = [(Decimal(v) / Decimal(temperature)).exp() for v in z]
            p = e[y] / sum(e)
            return p, 1 - p

        (ps, qs), (pt, qt) = split(s), split(t)
        return float(pt * (pt.ln() - ps.ln()) + qt * (qt.ln() - qs.ln()))


@pytest.mark.parametrize("s, t", [
    ([-60.0, 40.0, 35.0, 0.0], [2.0, 1.0, 0.0, -1.0]),     # the student's target probability underflows float32
    ([90.0, 0.0, -5.0, 1.0], [3.0, 4.0, 0.0, 1.0]),       # the student's p_t rounds to 1 in float32, so 1 - p_t is 0
    ([2.0, 1.0, 0.0, -1.0], [120.0, -30.0, 0.0, 5.0]),     # a teacher at p_t = 1 - 1e-50 (float64 rounds it to 1 too)
])
def test_tckd_stays_exact_for_extreme_logits(s, t):
    got, _ = decoupled_kl(torch.tensor([s]), torch.tensor([t]), torch.tensor([0]), 1.0)
    assert got.item() == pytest.approx(_tckd_exact(s, t, 0, 1.0), rel=1e-5)
    student = torch.tensor([s], requires_grad=True)
    decoupled_kl(student, torch.tensor([t]), torch.tensor([0]), 1.0)[0].sum().backward()
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0  # the gradient is not lost to a clamp


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_equals_tckd_plus_weighted_nckd(temperature):
    torch.manual_seed(0)
    zs, zt, y = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3, torch.randint(0, 10, (16,))
    tckd, nckd = decoupled_kl(zs, zt, y, temperature)
    pt_target = torch.softmax(zt / temperature, 1).gather(1, y[:, None]).squeeze(1)
    per_sample = torch.stack([kd_loss(zs[i:i + 1], zt[i:i + 1], temperature) / temperature**2 for i in range(16)])
    torch.testing.assert_close(tckd + (1 - pt_target) * nckd, per_sample, rtol=1e-4, atol=1e-6)


def test_dkd_method_weights_and_warmup():
    student = create_model("resnet20", num_classes=4)
    method = build_method(MethodConfig(name="dkd", alpha=1.0, beta=8.0, temperature=4.0, warmup=20), student, [student])
    torch.manual_seed(1)
    zs, zt, y = torch.randn(8, 4), torch.randn(8, 4), torch.randint(0, 4, (8,))
    out = ExitOutputs([torch.randn(8, 4), torch.randn(8, 4), zs], [])
    teacher = ExitOutputs([zt], [])
    tckd, nckd = decoupled_kl(zs, zt, y, 4.0)
    at5 = method.loss(out, [teacher], y, epoch=5, step=0, plan=method.everything())
    at40 = method.loss(out, [teacher], y, epoch=40, step=0, plan=method.everything())
    assert at5["tckd"].item() == pytest.approx(5 / 20 * 16 * tckd.mean().item(), rel=1e-5)
    assert at40["nckd"].item() == pytest.approx(16 * 8 * nckd.mean().item(), rel=1e-5)
    assert at40["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-6)
    assert "ce_early" in at40
