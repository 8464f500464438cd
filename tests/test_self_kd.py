"""self_kd: golden loss values (the final exit teaches the earlier ones) and where its gradients go."""
import math

import pytest
import torch

from golden import kl, softmax
from edgekd.config import MethodConfig
from edgekd.errors import EdgekdError
from edgekd.methods import build_method
from edgekd.models import ExitOutputs, create_model


def _soft_ce(p: list[float], q: list[float]) -> float:
    """-sum p log q: the soft term of BYOT's official train.py (its `CrossEntropy`)."""
    return -sum(a * math.log(b) for a, b in zip(p, q))


def test_self_kd_matches_the_official_byot_loss():
    # pytorch-self-distillation-final/train.py: loss = CE(deepest) + sum over shallower exits of
    # loss_coefficient * CrossEntropy(z_k/T, z_K/T) + (1 - loss_coefficient) * CE(z_k); T=3, 0.3, no T^2.
    method = build_method(MethodConfig(name="self_kd"), create_model("resnet20", num_classes=3), [])
    assert (method.params.form, method.params.alpha, method.params.temperature) == ("official", 0.3, 3.0)
    z = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    y = 1
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in z], []), [], torch.tensor([y]), epoch=1, step=0,
                        plan=method.everything())
    ce = [-math.log(softmax(r)[y]) for r in z]
    official = ce[-1] + sum(0.3 * _soft_ce(softmax(z[-1], 3.0), softmax(r, 3.0)) + 0.7 * c for r, c in zip(z[:-1], ce[:-1]))
    assert sum(terms.values()).item() == pytest.approx(official, rel=1e-6)
    assert terms["self_kd"].item() == pytest.approx(0.3 * sum(_soft_ce(softmax(z[-1], 3.0), softmax(r, 3.0)) for r in z[:-1]), rel=1e-6)


def test_t_squared_form_is_a_named_option_with_its_own_alpha():
    method = build_method(MethodConfig(name="self_kd", form="t_squared", temperature=2.0), create_model("resnet20", num_classes=3), [])
    assert method.params.alpha == 0.1  # the reimplementation's default for this form
    z = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in z], []), [], torch.tensor([1]), epoch=1, step=0,
                        plan=method.everything())
    soft = sum(_soft_ce(softmax(z[-1], 2.0), softmax(r, 2.0)) for r in z[:-1])
    assert terms["self_kd"].item() == pytest.approx(0.1 * 4.0 * soft, rel=1e-6)
    # same gradient as Hinton's T^2 KL: the two differ by the teacher's entropy, a constant
    assert soft - sum(kl(softmax(z[-1], 2.0), softmax(r, 2.0)) for r in z[:-1]) == pytest.approx(
        2 * -sum(p * math.log(p) for p in softmax(z[-1], 2.0)), rel=1e-9)


def test_self_kd_final_exit_learns_from_labels_only():
    method = build_method(MethodConfig(name="self_kd"), create_model("resnet20", num_classes=3), [])
    logits = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    terms = method.loss(ExitOutputs(logits, []), [], torch.tensor([0, 1, 2, 0]), epoch=1, step=0, plan=method.everything())
    terms["self_kd"].backward()
    assert logits[-1].grad is None or logits[-1].grad.abs().max() == 0  # the soft targets are detached
    assert all(z.grad.abs().max() > 0 for z in logits[:-1])


def test_ensemble_teacher_distills_every_exit_from_the_geometric_mean_of_their_probabilities():
    method = build_method(MethodConfig(name="self_kd", teacher="ensemble"), create_model("resnet20", num_classes=3), [])
    z = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    y = 1
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in z], []), [], torch.tensor([y]), epoch=1, step=0,
                        plan=method.everything())
    # the ensemble's logits: the mean of the exits' log-probabilities (any constant shift is the same softmax)
    ensemble = [sum(math.log(softmax(r)[c]) for r in z) / len(z) for c in range(3)]
    ce = [-math.log(softmax(r)[y]) for r in z]
    soft = [_soft_ce(softmax(ensemble, 3.0), softmax(r, 3.0)) for r in z]
    assert terms["ce"].item() == pytest.approx(0.7 * sum(ce), rel=1e-6)
    assert terms["self_kd"].item() == pytest.approx(0.3 * sum(soft), rel=1e-6)


def test_ensemble_teacher_trains_the_final_exit_on_soft_targets_too():
    method = build_method(MethodConfig(name="self_kd", teacher="ensemble"), create_model("resnet20", num_classes=3), [])
    logits = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    terms = method.loss(ExitOutputs(logits, []), [], torch.tensor([0, 1, 2, 0]), epoch=1, step=0, plan=method.everything())
    terms["self_kd"].backward()
    assert all(z.grad.abs().max() > 0 for z in logits)


def test_an_unknown_teacher_is_refused_with_the_choices():
    with pytest.raises(EdgekdError, match="ensemble"):
        build_method(MethodConfig(name="self_kd", teacher="mean"), create_model("resnet20", num_classes=3), [])


def test_self_kd_takes_no_teacher():
    student = create_model("resnet20", num_classes=3)
    with pytest.raises(EdgekdError, match="needs exactly 0 teacher"):
        build_method(MethodConfig(name="self_kd"), student, [create_model("resnet20", num_classes=3)])


def test_mixed_schedule_trains_the_backbone_first_then_everything():
    from training_helpers import Snapshots, changed_keys
    from edgekd.config import DataConfig, TrainConfig
    from edgekd.data import build_data
    from edgekd.engine.trainer import Trainer
    import copy

    torch.manual_seed(0)
    data = build_data(DataConfig(name="shapes", train_size=96, test_size=32, val_size=32, workers=0))
    student = create_model("resnet18", num_classes=10, width=0.125)
    method = build_method(MethodConfig(name="self_kd", backbone_epochs=2), student, [])
    assert [(p.epochs, sorted(p.trainable.heads)) for p in method.phases(5)] == [(2, [3]), (3, [0, 1, 2, 3])]
    snapshots = Snapshots()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, schedule="constant", device="cpu")
    previous = copy.deepcopy(student.state_dict())
    Trainer(student, method, [], data, cfg, run_dir="unused", callbacks=[snapshots], log=lambda m: None).fit()
    early_heads = tuple(f"heads.{k}." for k in range(3))
    for epoch, (state, _) in enumerate(snapshots.states, start=1):
        changed = changed_keys(previous, state)
        assert any(k.startswith("trunks.0.") for k in changed) and any(k.startswith("heads.3.") for k in changed)
        if epoch <= 2:  # backbone phase: the early heads, weights and BatchNorm statistics, stay as they were
            assert not [k for k in changed if k.startswith(early_heads)]
        else:
            assert all(any(k.startswith(f"heads.{i}.") for k in changed) for i in range(3))
        previous = state


def test_mixed_schedule_backbone_phase_is_plain_ce_of_the_final_exit():
    method = build_method(MethodConfig(name="self_kd", backbone_epochs=1), create_model("resnet20", num_classes=3), [])
    z = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 0.5]]
    backbone = method.phases(4)[0].trainable
    terms = method.loss(ExitOutputs([torch.tensor([r]) for r in z], []), [], torch.tensor([1]), epoch=1, step=0, plan=backbone)
    assert list(terms) == ["ce"] and terms["ce"].item() == pytest.approx(-math.log(softmax(z[-1])[1]), rel=1e-6)


def test_mixed_schedule_needs_a_joint_phase():
    method = build_method(MethodConfig(name="self_kd", backbone_epochs=4), create_model("resnet20", num_classes=3), [])
    with pytest.raises(EdgekdError, match="backbone_epochs=4 leaves no joint epochs"):
        method.phases(4)
