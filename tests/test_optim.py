"""Learning-rate schedules, checked at the epochs where they change."""
import pytest
import torch

from edgekd.config import TrainConfig
from edgekd.engine.optim import build_scheduler, lr_factor


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


def test_a_phased_method_restarts_the_schedule_at_every_phase():
    # mskd_resnet18's phased arm: 200 epochs in 4 phases of 50, multistep x0.1 after 100 and 150.
    cfg = TrainConfig(epochs=200, lr=0.1, schedule="multistep", milestones=[100, 150], warmup_epochs=4)
    steps = 2
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, steps, [50, 50, 50, 50])
    lrs = []
    for _ in range(200 * steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    at_epoch = lambda e: lrs[(e - 1) * steps]  # noqa: E731
    assert at_epoch(1) == pytest.approx(0.1 / (1 * steps))  # warm-up (1 epoch of 4/200 * 50), first phase only
    for start in (1, 51, 101, 151):  # every phase runs the whole schedule, milestones scaled to 25 and 37.5
        assert at_epoch(start + 2) == pytest.approx(0.1)
        assert at_epoch(start + 25) == pytest.approx(0.01)
        assert at_epoch(start + 40) == pytest.approx(0.001)
    assert at_epoch(51) == pytest.approx(0.1)  # no warm-up after the first phase
    # the deepest stage now trains at the same summed rate as the first, not 0.7% of it
    share = sum(lrs[150 * steps:]) / sum(lrs[:50 * steps])
    assert share == pytest.approx(1.0, abs=0.02)
    one = build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), cfg, steps, [200])
    assert one.lr_lambdas[0](160 * steps) == pytest.approx(lr_factor(160 * steps, steps, cfg))  # one phase: the plain schedule


def test_progressive_resize_ramps_to_full_size_and_ends_there():
    from edgekd.config import ProgressiveResizeConfig
    from edgekd.engine.resize import epoch_size, resized

    ramp = ProgressiveResizeConfig(initial_scale=0.5, finetune_fraction=0.25, size_multiple=4)
    assert [epoch_size(e, 8, 32, ramp) for e in range(1, 9)] == [16, 20, 20, 24, 28, 28, 32, 32]
    assert [epoch_size(e, 8, 32, None) for e in range(1, 9)] == [32] * 8
    images = torch.rand(2, 3, 32, 32)
    assert resized(images, 32) is images and resized(images, 20).shape == (2, 3, 20, 20)
