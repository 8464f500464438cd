"""Checkpoints: atomic, never with non-finite weights, only ever loaded safely."""
import pickle

import pytest
import torch

from edgekd.engine.checkpoint import load_checkpoint, save_checkpoint
from edgekd.errors import EdgekdError


def test_round_trip_and_no_temp_files_left(tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    save_checkpoint(path, {"epoch": 3, "model": {"w": torch.ones(2)}})
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_non_finite_weights_are_never_written(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "model": {"w": torch.ones(2)}})
    with pytest.raises(EdgekdError, match=r"non-finite weights in model\.w"):
        save_checkpoint(path, {"epoch": 2, "model": {"w": torch.tensor([1.0, float("nan")])}})
    assert load_checkpoint(path)["epoch"] == 1  # the good file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "model": {"w": torch.ones(1000)}})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(EdgekdError, match="corrupt, truncated"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_foreign_pickle_is_refused_not_executed(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "edgekd-checkpoint", "x": Payload()}, path)
    with pytest.raises(EdgekdError, match="unsafe to unpickle"):
        load_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(EdgekdError, match="cannot load checkpoint"):
        load_checkpoint(path)


def test_plain_torch_file_is_not_an_edgekd_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(1)}, path)
    with pytest.raises(EdgekdError, match="not an edgekd checkpoint"):
        load_checkpoint(path)
    with pytest.raises(EdgekdError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
