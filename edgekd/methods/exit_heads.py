"""`exit_heads`: train only the early-exit heads, with CE, on a frozen backbone.

SDN's "IC-only" training (Kaya et al. 2019) and how OtO / MTKD-SSR teachers get their exits
("Distilling Knowledge via Intermediate Classifiers", arXiv 2103.00497): the backbone's stages and
its final classifier stay frozen, BatchNorm included, so the final exit keeps its accuracy.
L = sum over exits k < K of CE(z_k, y).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from edgekd.errors import EdgekdError
from edgekd.methods.base import Method, NoParams, Phase, Trainable
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs, MultiExitNet


@METHODS.register("exit_heads")
class ExitHeads(Method[NoParams]):
    def __init__(self, params: NoParams, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__(params, student, teachers)
        if student.num_exits < 2:
            raise EdgekdError("method 'exit_heads' trains early-exit heads, but the model has only its final exit; set exits: all")
        self.early = frozenset(range(student.num_exits - 1))

    def phases(self, total_epochs: int) -> list[Phase]:
        return [Phase(total_epochs, Trainable(trunks=frozenset(), heads=self.early))]

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        return {"ce": sum(F.cross_entropy(z, target) for z in student_out.logits[:-1])}
