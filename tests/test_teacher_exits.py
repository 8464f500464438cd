"""How a teacher gets early exits: heads on its frozen backbone (cached, sharing the plain teacher),
trained jointly from scratch, or from a given single-exit checkpoint; and the mistakes named clearly."""
import pytest
import torch

from edgekd.config import resolve
from edgekd.data import build_data
from edgekd.engine.distributed import DistInfo
from edgekd.engine.run import prepare_teachers
from edgekd.errors import EdgekdError

TINY_TRAIN = {"epochs": 1, "batch_size": 32, "lr": 0.05, "schedule": "constant", "device": "cpu"}


def _config(teacher: dict, method: str = "oto"):
    raw = {"name": "t", "data": {"name": "shapes", "train_size": 96, "test_size": 32, "val_size": 32, "workers": 0},
           "teachers": [teacher], "student": {"name": "resnet18", "width": 0.125}, "method": {"name": method}, "train": TINY_TRAIN}
    return resolve(raw)


@pytest.fixture(scope="module")
def data():
    return build_data(_config({"model": {"name": "resnet34"}}).data)


def _prepare(config, data, runs_dir):
    logs = []
    return prepare_teachers(config, data, runs_dir, info=DistInfo(), log=logs.append)[0], logs


def test_frozen_heads_keep_the_plain_teachers_backbone_and_final_exit(data, tmp_path):
    plain, _ = _prepare(_config({"model": {"name": "resnet34", "exits": "last", "width": 0.125}}, "kd"), data, tmp_path)
    multi, logs = _prepare(_config({"model": {"name": "resnet34", "exits": "all", "width": 0.125},
                                    "heads_train": {"epochs": 2, "lr": 1e-2}}), data, tmp_path)
    assert multi.num_exits == 4
    assert any("backbone: cached" in line for line in logs), logs  # the plain teacher is reused, not retrained
    for mine, theirs in zip(multi.stage_modules, plain.stage_modules):
        for (k, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), k
    images = torch.stack([data.test[i][0] for i in range(16)])
    with torch.no_grad():
        torch.testing.assert_close(multi.eval()(images).logits[-1], plain.eval()(images).logits[-1])
    _, again = _prepare(_config({"model": {"name": "resnet34", "exits": "all", "width": 0.125},
                                 "heads_train": {"epochs": 2, "lr": 1e-2}}), data, tmp_path)
    assert any("exit heads on the frozen backbone: cached" in line for line in again)


def test_joint_exits_train_the_whole_network(data, tmp_path):
    plain, _ = _prepare(_config({"model": {"name": "resnet34", "exits": "last", "width": 0.125}}, "kd"), data, tmp_path)
    joint, logs = _prepare(_config({"model": {"name": "resnet34", "exits": "all", "width": 0.125}, "exit_heads": "joint"}), data, tmp_path)
    assert joint.num_exits == 4 and not any("backbone" in line for line in logs)
    first_conv = next(iter(joint.stage_modules[0].state_dict().values()))
    assert not torch.equal(first_conv, next(iter(plain.stage_modules[0].state_dict().values())))


def test_single_exit_checkpoint_gets_heads_and_mismatches_are_named(data, tmp_path):
    _prepare(_config({"model": {"name": "resnet34", "exits": "last", "width": 0.125}}, "kd"), data, tmp_path)
    checkpoint = next((tmp_path / "teachers").glob("resnet34-*/checkpoints/best.pt"))
    multi, logs = _prepare(_config({"model": {"name": "resnet34", "exits": "all", "width": 0.125}, "checkpoint": str(checkpoint)}),
                           data, tmp_path)
    assert multi.num_exits == 4 and any("exit heads on the frozen backbone" in line for line in logs)
    with pytest.raises(EdgekdError, match="single-exit one with exit_heads: frozen"):
        _prepare(_config({"model": {"name": "resnet34", "exits": "all", "width": 0.125}, "checkpoint": str(checkpoint),
                          "exit_heads": "joint"}), data, tmp_path)
    with pytest.raises(EdgekdError, match="width=0.125, but the recipe asks for 0.25"):
        _prepare(_config({"model": {"name": "resnet34", "exits": "all", "width": 0.25}, "checkpoint": str(checkpoint)}), data, tmp_path)
    with pytest.raises(EdgekdError, match="does not exist"):
        _prepare(_config({"model": {"name": "resnet34", "width": 0.125}, "checkpoint": str(tmp_path / "missing.pt")}), data, tmp_path)
