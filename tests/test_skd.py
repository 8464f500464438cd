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
from edgekd.methods.base import Trainable
from edgekd.models import ExitOutputs, create_model


def test_phases_stem_then_one_per_stage_then_the_classifier():
    student = create_model("resnet18", num_classes=10, width=0.125)
    method = build_method(MethodConfig(name="skd"), student, [create_model("resnet34", num_classes=10, exits="last", width=0.125)])
    phases = method.phases(12)
    assert [p.epochs for p in phases] == [2] * 6  # the reference's six phases for a ResNet
    plans = [p.trainable for p in phases]
    assert plans[0] == Trainable(frozenset(), frozenset(), stem=True)  # the stem alone
    assert plans[1] == Trainable(frozenset({0}), frozenset(), stem=False)  # layer1 without the stem
    assert [sorted(p.trunks) for p in plans[2:5]] == [[1], [2], [3]]
    assert [sorted(p.heads) for p in plans[1:]] == [[], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
    with pytest.raises(EdgekdError, match="at least 6 epochs"):
        method.phases(5)


def test_a_backbone_without_a_separable_stem_trains_it_with_stage_1():
    student, teacher = create_model("vgg8", num_classes=10, width=0.25), create_model("vgg13", num_classes=10, exits="last", width=0.25)
    method = build_method(MethodConfig(name="skd"), student, [teacher])
    plans = [p.trainable for p in method.phases(10)]
    assert len(plans) == 5 and plans[0] == Trainable(frozenset({0}), frozenset())


def test_stem_and_stage_losses_are_mse_against_the_teachers():
    student = create_model("resnet18", num_classes=10, width=0.125)
    teacher = create_model("resnet34", num_classes=10, exits="last", width=0.125)
    method = build_method(MethodConfig(name="skd"), student, [teacher])
    plans = [p.trainable for p in method.phases(12)]
    s_feats = [torch.randn(2, c, 4, 4) for c in (8, 16, 32, 64)]
    t_stages = [torch.randn(2, c, 4, 4) for c in (8, 16, 32, 64)]
    s_stem, t_stem = torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)
    out = ExitOutputs([torch.randn(2, 10) for _ in range(4)], s_feats, s_feats, s_stem)
    teacher_out = [ExitOutputs([torch.randn(2, 10)], [], t_stages, t_stem)]
    y = torch.tensor([0, 1])
    stem_terms = method.loss(out, teacher_out, y, epoch=1, step=0, plan=plans[0])
    assert set(stem_terms) == {"mse"} and stem_terms["mse"].item() == pytest.approx(F.mse_loss(s_stem, t_stem).item())
    terms = method.loss(out, teacher_out, y, epoch=5, step=0, plan=plans[2])  # stage 2
    assert terms["mse"].item() == pytest.approx(F.mse_loss(s_feats[1], t_stages[1]).item())
    assert set(terms) == {"mse", "ce"}  # exit head 1 trains with CE once stage 1 is done


def test_final_classifier_learns_with_ce_unless_told_otherwise():
    student = create_model("resnet18", num_classes=10, width=0.125)
    teacher = create_model("resnet34", num_classes=10, exits="last", width=0.125)
    logits, y = [torch.randn(2, 10) for _ in range(4)], torch.tensor([0, 1])
    out, teacher_out = ExitOutputs(logits, []), [ExitOutputs([torch.randn(2, 10)], [])]
    for head_loss in ("ce", "kd"):
        method = build_method(MethodConfig(name="skd", head_loss=head_loss), student, [teacher])
        last = method.phases(12)[-1].trainable
        terms = method.loss(out, teacher_out, y, epoch=12, step=0, plan=last)
        assert terms["ce"].item() >= F.cross_entropy(logits[-1], y).item() - 1e-6  # the classifier's CE is in
        assert ("kd" in terms) == (head_loss == "kd")  # early heads follow head_loss
    method = build_method(MethodConfig(name="skd", final_loss="kd"), student, [teacher])
    terms = method.loss(out, teacher_out, y, epoch=12, step=0, plan=method.phases(12)[-1].trainable)
    assert set(terms) == {"ce", "kd"}


@pytest.mark.parametrize("teacher_width", [0.125, 0.25])  # same widths (identity) and wider teacher (1x1 adapters)
def test_each_phase_changes_exactly_its_part(teacher_width):
    torch.manual_seed(0)
    data = build_data(DataConfig(name="shapes", train_size=96, test_size=32, val_size=32, workers=0))
    teacher = create_model("resnet34", num_classes=10, exits="last", width=teacher_width)
    student = create_model("resnet18", num_classes=10, width=0.125)
    method = build_method(MethodConfig(name="skd"), student, [teacher])
    assert all(isinstance(a, torch.nn.Identity) for a in method.adapters) == (teacher_width == 0.125)
    snapshots = Snapshots()
    cfg = TrainConfig(epochs=6, batch_size=32, optimizer="adamw", lr=1e-2, weight_decay=0.0, schedule="constant", device="cpu")
    previous = (copy.deepcopy(student.state_dict()), copy.deepcopy(method.state_dict()))
    Trainer(student, method, [teacher], data, cfg, run_dir="unused", callbacks=[snapshots], log=lambda m: None).fit()
    stem, layer1 = "trunks.0.0.0.", "trunks.0.0.1."  # the first stage is Sequential(stem, layer1)
    for phase, (state, method_state) in enumerate(snapshots.states, start=1):
        changed = changed_keys(previous[0], state)
        part = {1: {stem}, 2: {layer1}}.get(phase, {f"trunks.{phase - 2}."} if phase <= 5 else set())
        heads = {f"heads.{k}." for k in range(max(0, phase - 2))} if phase < 6 else {f"heads.{k}." for k in range(4)}
        allowed = {k for k in state if k.startswith(tuple(part | heads))}
        assert changed <= allowed, f"phase {phase} changed frozen parts: {sorted(changed - allowed)[:5]}"
        for prefix in part | heads:  # everything that should train did, BatchNorm statistics included
            assert any(k.startswith(prefix) for k in changed), f"phase {phase}: {prefix} did not train"
        if phase <= 5:
            assert any(k.startswith(tuple(part)) and "running_mean" in k for k in changed)
        adapters = {k.split(".")[0] + (("." + k.split(".")[1]) if k.startswith("adapters.") else "")
                    for k in changed_keys(previous[1], method_state)}
        expected = {1: {"stem_adapter"}}.get(phase, {f"adapters.{phase - 2}"} if phase <= 5 else set())
        assert adapters <= expected
        previous = (state, method_state)
