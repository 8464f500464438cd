"""Stagewise KD: the phase schedule, and each phase changing exactly the current stage (plus done heads)."""
import copy

import pytest
import torch
import torch.nn.functional as F

from training_helpers import Snapshots, changed_keys
from edgekd.config import DataConfig, MethodConfig, TrainConfig
from edgekd.data import build_data
from edgekd.engine.trainer import Trainer
from edgekd.errors import EdgekdError
from edgekd.methods import build_method
from edgekd.methods.skd import skd_phase
from edgekd.models import ExitOutputs, create_model


def test_phases_one_per_stage_then_the_classifier():
    assert [skd_phase(e, 10, 4) for e in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    with pytest.raises(EdgekdError, match="at least 5 epochs"):
        skd_phase(1, 4, 4)


def test_stage_loss_is_mse_against_the_teachers_stage():
    student = create_model("resnet18", num_classes=10, width=0.125)
    teacher = create_model("resnet34", num_classes=10, exits="last", width=0.125)
    method = build_method(MethodConfig(name="skd"), student, [teacher])
    method.trainable(3, 10)  # phase 2: stage 2
    s_feats = [torch.randn(2, c, 4, 4) for c in (8, 16, 32, 64)]
    t_stages = [torch.randn(2, c, 4, 4) for c in (8, 16, 32, 64)]
    terms = method.loss(ExitOutputs([torch.randn(2, 10) for _ in range(4)], s_feats), [ExitOutputs([torch.randn(2, 10)], [], t_stages)],
                        torch.tensor([0, 1]), epoch=3, step=0)
    assert terms["mse"].item() == pytest.approx(F.mse_loss(s_feats[1], t_stages[1]).item())
    assert set(terms) == {"mse", "ce"}  # exit head 1 trains with CE once stage 1 is done


@pytest.mark.parametrize("teacher_width", [0.125, 0.25])  # same widths (identity) and wider teacher (1x1 adapters)
def test_each_phase_changes_exactly_its_stage(teacher_width):
    torch.manual_seed(0)
    data = build_data(DataConfig(name="shapes", train_size=96, test_size=32, val_size=32, workers=0))
    teacher = create_model("resnet34", num_classes=10, exits="last", width=teacher_width)
    student = create_model("resnet18", num_classes=10, width=0.125)
    method = build_method(MethodConfig(name="skd"), student, [teacher])
    assert all(isinstance(a, torch.nn.Identity) for a in method.adapters) == (teacher_width == 0.125)
    snapshots = Snapshots()
    cfg = TrainConfig(epochs=5, batch_size=32, optimizer="adamw", lr=1e-2, weight_decay=0.0, schedule="constant", device="cpu")
    previous = (copy.deepcopy(student.state_dict()), copy.deepcopy(method.state_dict()))
    Trainer(student, method, [teacher], data, cfg, run_dir="unused", callbacks=[snapshots], log=lambda m: None).fit()
    for phase, (state, method_state) in enumerate(snapshots.states, start=1):
        changed = changed_keys(previous[0], state)
        stage = {f"trunks.{phase - 1}."} if phase <= 4 else set()
        heads = {f"heads.{k}." for k in range(phase - 1)}
        allowed = {k for k in state if k.startswith(tuple(stage | heads))}
        assert changed <= allowed, f"phase {phase} changed frozen parts: {sorted(changed - allowed)[:5]}"
        for prefix in stage | heads:  # everything that should train did, BatchNorm statistics included
            assert any(k.startswith(prefix) for k in changed), f"phase {phase}: {prefix} did not train"
        if phase <= 4:
            assert any(k.startswith(f"trunks.{phase - 1}.") and "running_mean" in k for k in changed)
        adapters = changed_keys(previous[1], method_state)
        assert {k.split(".")[1] for k in adapters} <= ({str(phase - 1)} if phase <= 4 else set())
        previous = (state, method_state)
