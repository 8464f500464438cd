"""MSKD: golden loss values, the phase schedule, and phased training touching only active exits."""
import copy
import math

import pytest
import torch

from training_helpers import Snapshots, changed_keys
from golden import softmax
from edgekd.config import DataConfig, MethodConfig, TrainConfig
from edgekd.data import build_data
from edgekd.engine.trainer import Trainer
from edgekd.methods import build_method
from edgekd.methods.base import equal_phases
from edgekd.models import ExitOutputs, create_model


def test_mskd_loss_golden_values():
    student = create_model("resnet20", num_classes=3)
    method = build_method(MethodConfig(name="mskd", temperature=2.0, alpha=0.8), student, [student])
    s = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    t, y = [0.2, 3.0, -1.0], 1
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in s], []), [ExitOutputs([torch.tensor([t])], [])],
                        torch.tensor([y]), epoch=1, step=0, plan=method.everything())
    pt = softmax(t, 2.0)
    kd = sum(4.0 * sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, softmax(r, 2.0))) for r in s)
    ce = sum(-math.log(softmax(r)[y]) for r in s)
    assert terms["kd"].item() == pytest.approx(0.8 * kd, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(0.2 * ce, rel=1e-5)


def test_phases_split_epochs_equally_and_end_joint():
    assert equal_phases(8, 4) == [2, 2, 2, 2] and equal_phases(10, 4) == [2, 3, 2, 3]
    student = create_model("resnet18", num_classes=10, width=0.125)
    method = build_method(MethodConfig(name="mskd", schedule="phased"), student, [student])
    phases = method.phases(8)
    assert [p.epochs for p in phases] == [2, 2, 2, 2]
    assert [sorted(p.trainable.heads) for p in phases] == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
    assert phases[-1].trainable == method.everything()  # the last phase is joint
    short = method.phases(3)  # fewer epochs than exits: the shallowest phases are dropped
    assert [(p.epochs, len(p.trainable.heads)) for p in short] == [(1, 2), (1, 3), (1, 4)]
    joint = build_method(MethodConfig(name="mskd"), student, [student]).phases(8)
    assert len(joint) == 1 and joint[0].epochs == 8


def test_phased_loss_reads_only_the_exits_of_the_plan():
    student = create_model("resnet18", num_classes=3, width=0.125)
    method = build_method(MethodConfig(name="mskd", schedule="phased"), student, [student])
    s, t, y = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5], [0.3, 0.1, 0.9]], [0.2, 3.0, -1.0], 1
    out, teacher = ExitOutputs([torch.tensor([r]) for r in s], []), [ExitOutputs([torch.tensor([t])], [])]
    plan = method.phases(8)[1].trainable  # phase 2: exits 1 and 2
    terms = method.loss(out, teacher, torch.tensor([y]), epoch=3, step=0, plan=plan)
    ce = sum(-math.log(softmax(r)[y]) for r in s[:2])
    assert terms["ce"].item() == pytest.approx(0.1 * ce, rel=1e-5)


def test_phased_epochs_change_exactly_the_active_exits():
    torch.manual_seed(0)
    data = build_data(DataConfig(name="shapes", train_size=160, test_size=32, val_size=32, workers=0))
    teacher = create_model("resnet20", num_classes=10, exits="last", width=0.5)
    student = create_model("resnet18", num_classes=10, width=0.125)
    method = build_method(MethodConfig(name="mskd", schedule="phased"), student, [teacher])
    snapshots = Snapshots()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.05, schedule="constant", device="cpu")
    previous = copy.deepcopy(student.state_dict())
    Trainer(student, method, [teacher], data, cfg, run_dir="unused", callbacks=[snapshots], log=lambda m: None).fit()
    for active, (state, _) in enumerate(snapshots.states, start=1):
        changed = changed_keys(previous, state)
        allowed = {k for k in state if k.startswith(tuple(f"{part}.{i}." for i in range(active) for part in ("trunks", "heads")))}
        assert changed, f"nothing trained in phase {active}"
        assert changed <= allowed, f"phase {active} changed frozen exits: {sorted(changed - allowed)[:5]}"
        assert any(k.startswith(f"heads.{active - 1}.") for k in changed)  # the newest exit trains
        assert any("running_mean" in k for k in changed)
        previous = state
