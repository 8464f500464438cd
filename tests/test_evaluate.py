"""Validation and test accuracy per exit and of both ensembles (mean softmax, mean logit)."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgekd.engine.evaluate import evaluate
from edgekd.models import ExitOutputs


class FixedExits(nn.Module):
    """Two exits whose logits are given per image: exit 1 is sure and wrong, exit 2 unsure and right."""

    num_exits = 2

    def __init__(self, logits: list[torch.Tensor]):
        super().__init__()
        self.table = logits

    def forward(self, index: torch.Tensor) -> ExitOutputs:
        rows = index[:, 0, 0, 0].long()
        return ExitOutputs([z[rows] for z in self.table], [])


def test_mean_softmax_and_mean_logit_ensembles_can_disagree():
    # exit 1: huge logits for class 0; exit 2: small logits for class 1. Mean logits pick class 0,
    # mean softmax picks class 1 (exit 1's vote is at most 1, exit 2's 0.5 + its margin over exit 1's ~0).
    exit1 = torch.tensor([[20.0, 0.0, 19.0]] * 4)
    exit2 = torch.tensor([[-3.0, 4.0, -3.0]] * 4)
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 1, 1).contiguous()
    loader = DataLoader(TensorDataset(images, torch.ones(4, dtype=torch.long)), batch_size=2)
    result = evaluate(FixedExits([exit1, exit2]), loader, torch.device("cpu"))
    assert result["top1"] == [0.0, 100.0]
    assert result["ensemble_top1"] == 100.0  # softmax means: [0.37, 0.5, 0.14] -> class 1
    assert result["ensemble_logit_top1"] == 0.0  # logit means: [8.5, 2.0, 8.0] -> class 0
    assert result["images"] == 4
