"""DFS feature partitioning: the forward pass is unchanged; at each early fork the head's loss trains
only the exit's own channels and the deeper exits' losses only the shared ones."""
import copy

import pytest
import torch
import yaml

from conftest import run_cli_here
from edgekd.errors import EdgekdError
from edgekd.models import create_model
from edgekd.models.feature_partition import shared_channels


def _fork_gradients(model, images, exit_index):
    """Gradient of one exit's summed logits at every fork's feature map (None where it does not reach)."""
    model.zero_grad()
    outputs = model(images)
    for features in outputs.features:
        features.retain_grad()
    outputs.logits[exit_index].sum().backward()
    return [None if f.grad is None else f.grad.clone() for f in outputs.features]


def test_partition_keeps_outputs_and_splits_each_forks_gradient_by_channel():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, width=0.25).eval()  # eval: BatchNorm is the same in every pass
    images = torch.randn(3, 3, 32, 32)
    plain_logits = [z.detach() for z in model(images).logits]
    plain = [_fork_gradients(model, images, k) for k in range(4)]
    model.feature_partition = 0.5
    assert all(torch.equal(a, b.detach()) for a, b in zip(plain_logits, model(images).logits))
    split = [_fork_gradients(model, images, k) for k in range(4)]
    channels = [info.channels for info in model.exit_info]
    assert channels == [16, 32, 64, 128]
    for fork in range(3):  # the final exit has no fork after it
        shared = channels[fork] // 2
        # The fork's own head: its gradient stays on the exit's channels (the last half), unchanged there.
        head = split[fork][fork]
        assert torch.count_nonzero(head[:, :shared]) == 0
        torch.testing.assert_close(head[:, shared:], plain[fork][fork][:, shared:], rtol=1e-5, atol=1e-7)
        assert torch.count_nonzero(head[:, shared:]) > 0
        # Every deeper exit reaches this fork through the deeper path only: the shared channels (the first half).
        for deeper in (split[k][fork] for k in range(fork + 1, 4)):
            assert torch.count_nonzero(deeper[:, shared:]) == 0
            assert torch.count_nonzero(deeper[:, :shared]) > 0
    # Past the last early fork nothing else is masked, so there the final exit's gradient is the plain one.
    torch.testing.assert_close(split[3][2][:, :32], plain[3][2][:, :32], rtol=1e-5, atol=1e-7)


def test_a_share_of_0_25_leaves_a_quarter_of_each_fork_to_the_deeper_exits():
    torch.manual_seed(1)
    model = create_model("resnet18", num_classes=10, width=0.25).eval()
    model.feature_partition = 0.25
    deeper = _fork_gradients(model, torch.randn(2, 3, 32, 32), 3)  # the final exit's loss
    for fork, grad in enumerate(deeper[:3]):
        nonzero_channels = grad.abs().sum(dim=(0, 2, 3)) > 0
        assert nonzero_channels.tolist() == [True] * (grad.shape[1] // 4) + [False] * (grad.shape[1] * 3 // 4)


def test_partition_is_off_without_gradients_and_leaves_inference_alone():
    model = create_model("resnet18", num_classes=10, width=0.125).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model(images).logits
        model.feature_partition = 0.5
        split = model(images).logits
    assert all(torch.equal(a, b) for a, b in zip(plain, split))


def test_a_share_that_empties_one_side_of_a_fork_is_refused_with_the_range():
    assert shared_channels(64, 0.5) == 32
    with pytest.raises(EdgekdError, match=r"leaves 0 of an early exit's 8 channels .* between 0.125 and 0.875"):
        shared_channels(8, 0.05)
    with pytest.raises(EdgekdError, match="and 0 to the exit's head"):
        shared_channels(8, 0.97)


def _recipe(tmp_path, share: float) -> str:
    path = tmp_path / "dfs.yaml"
    path.write_text(yaml.safe_dump({
        "name": "dfs", "data": {"name": "shapes", "train_size": 96, "test_size": 32, "val_size": 32, "workers": 0},
        "student": {"name": "resnet18", "exits": "all", "width": 0.125}, "method": {"name": "self_kd"},
        "train": {"epochs": 1, "batch_size": 32, "feature_partition": share}}))
    return str(path)


def test_a_recipe_with_feature_partition_trains_every_exit(tmp_path):
    result = run_cli_here("recipe", _recipe(tmp_path, 0.5), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "runs" / "dfs" / "config.yaml").read_text())
    assert config["train"]["feature_partition"] == 0.5
    assert (tmp_path / "runs" / "dfs" / "checkpoints" / "best.pt").is_file()


def test_a_recipe_whose_share_cannot_split_a_fork_is_refused_before_training(tmp_path):
    # width 0.125: the first exit's fork has 8 channels, so 0.05 leaves the deeper exits none of them.
    result = run_cli_here("recipe", _recipe(tmp_path, 0.05), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "train.feature_partition=0.05 leaves 0 of an early exit's 8 channels" in result.stderr
    assert not list((tmp_path / "runs").rglob("*.pt"))


@pytest.mark.parametrize("share", [0.0, 1.0, -0.5])
def test_shares_outside_0_1_are_config_errors(share):
    from pydantic import ValidationError

    from edgekd.config import TrainConfig

    with pytest.raises(ValidationError, match="feature_partition"):
        TrainConfig(feature_partition=share)


def test_partition_and_gradient_equilibrium_compose():
    torch.manual_seed(2)
    model = create_model("resnet18", num_classes=10, width=0.25).eval()
    images = torch.randn(2, 3, 32, 32)
    model.feature_partition = 0.5
    partitioned = _fork_gradients(model, images, 1)
    both = copy.deepcopy(model)
    both.gradient_equilibrium = True
    balanced = _fork_gradients(both, images, 1)
    # Exit 2 (index 1) enters its head with 1/3 of its gradient and reaches fork 1 through the deeper
    # path, which keeps 3/4: a quarter in all, on the same channels the partition leaves in both.
    torch.testing.assert_close(balanced[0], partitioned[0] * 0.25, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(balanced[1], partitioned[1] / 3, rtol=1e-4, atol=1e-8)
