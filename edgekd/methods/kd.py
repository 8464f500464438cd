"""`kd`: classic knowledge distillation (Hinton et al. 2015) on the student's final exit.

L = gamma * CE(z_K, y) + alpha * T^2 * KL(softmax(z^T/T) || softmax(z_K/T))   (RepDistiller weighting)
Earlier exits of a multi-exit student learn from labels only (`early_ce` * CE each), so they stay
usable; MSKD is the method where every exit imitates the teacher.
"""
from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from edgekd.methods.base import Method, Trainable
from edgekd.methods.losses import early_exits_ce, kd_loss
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs


class KDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, description="weight of the KD term")
    gamma: float = Field(0.1, ge=0, description="weight of CE on the final exit")
    early_ce: float = Field(1.0, ge=0, description="weight of CE on each earlier exit")


@METHODS.register("kd")
class KD(Method[KDParams]):
    Params = KDParams
    min_teachers, max_teachers = 1, 1
    reads_teacher_features = False

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        p = self.params
        final, teacher_final = student_out.logits[-1], teacher_outs[0].logits[-1]
        return {
            "ce": p.gamma * F.cross_entropy(final, target),
            "kd": p.alpha * kd_loss(final, teacher_final, p.temperature),
            **early_exits_ce(student_out.logits, target, p.early_ce),
        }
