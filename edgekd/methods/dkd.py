"""`dkd`: Decoupled Knowledge Distillation (Zhao et al., CVPR 2022), mdistiller's formulation.

L = ce * CE(z_K, y) + min(epoch / warmup, 1) * T^2 * (alpha * TCKD + beta * NCKD)  on the final exit;
earlier exits of a multi-exit student learn from labels (`early_ce` * CE each), as in `kd`.
Defaults alpha=1, beta=8, T=4, warm-up 20 epochs (beta per pair: docs/methods.md, "DKD").
"""
from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from edgekd.methods.base import Method, Trainable
from edgekd.methods.losses import decoupled_kl, early_exits_ce
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs


class DKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(1.0, ge=0, description="weight of TCKD")
    beta: float = Field(8.0, ge=0, description="weight of NCKD")
    temperature: float = Field(4.0, gt=0)
    warmup: int = Field(20, ge=0, description="epochs over which the DKD term ramps up linearly")
    ce: float = Field(1.0, ge=0, description="weight of CE on the final exit")
    early_ce: float = Field(1.0, ge=0, description="weight of CE on each earlier exit")


@METHODS.register("dkd")
class DKD(Method[DKDParams]):
    Params = DKDParams
    min_teachers, max_teachers = 1, 1
    reads_teacher_features = False

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        p = self.params
        final = student_out.logits[-1]
        tckd, nckd = decoupled_kl(final, teacher_outs[0].logits[-1], target, p.temperature)
        ramp = min(epoch / p.warmup, 1.0) if p.warmup else 1.0
        scale = ramp * p.temperature**2
        return {"ce": p.ce * F.cross_entropy(final, target),
                "tckd": scale * p.alpha * tckd.mean(), "nckd": scale * p.beta * nckd.mean(),
                **early_exits_ce(student_out.logits, target, p.early_ce)}
