"""Learning-rate schedules, checked at the epochs where they change."""
import pytest
import torch

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


def test_progressive_resize_ramps_to_full_size_and_ends_there():
    from edgekd.config import ProgressiveResizeConfig
    from edgekd.engine.resize import epoch_size, resized

    ramp = ProgressiveResizeConfig(initial_scale=0.5, finetune_fraction=0.25, size_multiple=4)
    assert [epoch_size(e, 8, 32, ramp) for e in range(1, 9)] == [16, 20, 20, 24, 28, 28, 32, 32]
    assert [epoch_size(e, 8, 32, None) for e in range(1, 9)] == [32] * 8
    images = torch.rand(2, 3, 32, 32)
    assert resized(images, 32) is images and resized(images, 20).shape == (2, 3, 20, 20)
