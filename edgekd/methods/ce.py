"""`ce`: cross-entropy at every exit, no teacher. The baseline, and how teachers are trained."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from edgekd.methods.base import Method, NoParams, Trainable
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs


@METHODS.register("ce")
class CrossEntropy(Method[NoParams]):
    """L = sum over exits k of CE(z_k, y)."""

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        return {"ce": sum(F.cross_entropy(logits, target) for logits in student_out.logits)}
