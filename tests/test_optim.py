"""Learning-rate schedules, checked at the epochs where they change."""
import pytest

from edgekd.config import TrainConfig
from edgekd.engine.optim import lr_factor


def test_multistep_decays_after_each_milestone_epoch():
    cfg = TrainConfig(epochs=240, milestones=[150, 180, 210], lr_decay=0.1)
    steps = 10
    at_epoch = lambda e: lr_factor((e - 1) * steps, steps, cfg)  # noqa: E731  (first step of epoch e, 1-based)
    assert at_epoch(150) == 1.0
    assert at_epoch(151) == pytest.approx(0.1)
    assert at_epoch(181) == pytest.approx(0.01)
    assert at_epoch(211) == pytest.approx(0.001)


def test_warmup_is_linear_then_cosine_reaches_zero():
    cfg = TrainConfig(epochs=10, schedule="cosine", warmup_epochs=1)
    steps = 100
    assert lr_factor(0, steps, cfg) == pytest.approx(0.01)
    assert lr_factor(49, steps, cfg) == pytest.approx(0.5)
    assert lr_factor(100, steps, cfg) == pytest.approx(1.0)
    assert lr_factor(550, steps, cfg) == pytest.approx(0.5, abs=1e-2)
    assert lr_factor(999, steps, cfg) < 1e-3
