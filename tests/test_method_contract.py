"""Every method, trained for real: teachers stay frozen in eval mode under no_grad, and gradients
reach only the student and the method's own adapters."""
import copy

import pytest
import torch

from edgekd.config import DataConfig, MethodConfig, TrainConfig
from edgekd.data import build_data
from edgekd.engine.trainer import Trainer
from edgekd.methods import METHODS, build_method
from edgekd.models import create_model

TEACHER_EXITS = {"oto": "all", "mtkd_ssr": "all"}


@pytest.mark.parametrize("name", [m for m in METHODS.names() if METHODS.get(m).max_teachers != 0])
def test_teachers_stay_frozen_and_only_the_student_learns(name):
    torch.manual_seed(0)
    data = build_data(DataConfig(name="shapes", train_size=64, test_size=32, val_size=32, workers=0))
    cls = METHODS.get(name)
    count = 2 if cls.max_teachers is None else cls.min_teachers
    teachers = [create_model("resnet34", num_classes=10, exits=TEACHER_EXITS.get(name, "last"), width=0.125) for _ in range(count)]
    for teacher in teachers:
        teacher.train()  # the trainer must switch them to eval itself
    before = [copy.deepcopy(t.state_dict()) for t in teachers]
    seen = []
    for teacher in teachers:
        teacher.register_forward_hook(lambda module, args, out: seen.append((module.training, torch.is_grad_enabled())))
    student = create_model("resnet18", num_classes=10, width=0.125)
    method = build_method(MethodConfig(name=name), student, teachers)
    cfg = TrainConfig(epochs=6 if name == "skd" else 1, batch_size=32, lr=0.01, schedule="constant", device="cpu")
    Trainer(student, method, teachers, data, cfg, run_dir="unused", callbacks=[], log=lambda m: None).fit()

    assert seen and all(mode == (False, False) for mode in seen), "a teacher ran in train mode or with gradients"
    for teacher, state in zip(teachers, before):
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
        assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in state.items()), "a teacher's weights or BN statistics moved"
    assert any(p.grad is not None for p in student.parameters())
    if name != "skd":  # Stagewise KD's last phase trains the classifier only, without adapters
        assert all(p.grad is not None for p in method.parameters()), "an adapter got no gradient"
