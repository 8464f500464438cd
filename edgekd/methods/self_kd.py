"""`self_kd`: self-distillation, the student's final exit teaches its earlier exits (BYOT's response
term, Zhang et al. ICCV 2019; docs/methods.md, "Self-distillation (BYOT)"). No teacher network.

`form: official` (default) is the authors' code (pytorch-self-distillation-final, train.py) exactly:
L = CE(z_K, y) + sum over k < K of [(1 - alpha) * CE(z_k, y) + alpha * H(softmax(sg(z_K)/T), softmax(z_k/T))]
with H the soft cross-entropy -sum p log q (no T^2), T=3, alpha=0.3.
`form: t_squared` scales the soft term by T^2 as Hinton KD does, with the defaults of the
reimplementation that uses it (luanyunteng/pytorch-be-your-own-teacher): alpha=0.1, T=3.
The final exit's logits are detached, so it learns from the labels alone. BYOT's feature term
(shallow features regressed onto the deepest) is not part of this method.

`teacher: ensemble` takes the soft targets from the exits' geometric ensemble instead of the final
exit (online ensemble distillation, as ONE, Lan et al. NeurIPS 2018, does with its branches): the
normalised geometric mean of every exit's probabilities, detached, and then the final exit learns
from it as well, with the same (1 - alpha) * CE + alpha * soft term as the earlier exits.

`backbone_epochs: N` is the mixed schedule (Kubaty et al. 2024, "How to train your multi-exit
model?"): the first N epochs train the backbone and the final exit alone with CE, the early heads
frozen; then everything trains jointly with the loss above, on a restarted learning-rate schedule.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from edgekd.errors import EdgekdError
from edgekd.methods.base import Method, Phase, Trainable
from edgekd.methods.losses import soft_cross_entropy
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs

# alpha when the recipe gives none, per form
DEFAULT_ALPHA = {"official": 0.3, "t_squared": 0.1}


class SelfKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    form: Literal["official", "t_squared"] = Field("official", description="official: BYOT's code, no T^2; t_squared: soft term times T^2")
    temperature: float = Field(3.0, gt=0)
    alpha: Optional[float] = Field(None, ge=0, le=1, description="share of the soft targets at each exit they teach "
                                   "(default 0.3 for official, 0.1 for t_squared)")
    teacher: Literal["final", "ensemble"] = Field("final", description="where the soft targets come from: final: the "
                                                  "final exit (BYOT), which learns from the labels alone; ensemble: "
                                                  "the geometric ensemble of every exit, which teaches the final exit too")
    backbone_epochs: int = Field(0, ge=0, description="mixed schedule: epochs that first train the backbone and final "
                                 "exit alone (CE), before the joint phase; 0: joint from the start")

    @model_validator(mode="after")
    def _default_alpha(self) -> "SelfKDParams":
        if self.alpha is None:
            self.alpha = DEFAULT_ALPHA[self.form]
        return self


@METHODS.register("self_kd")
class SelfKD(Method[SelfKDParams]):
    Params = SelfKDParams

    def phases(self, total_epochs: int) -> list[Phase]:
        first = self.params.backbone_epochs
        if not first:
            return super().phases(total_epochs)
        if first >= total_epochs:
            raise EdgekdError(f"method.backbone_epochs={first} leaves no joint epochs in a run of {total_epochs}; "
                             f"give fewer backbone epochs or more train.epochs")
        final = self.num_exits - 1
        backbone = Trainable(frozenset(range(self.num_exits)), frozenset({final}))
        return [Phase(first, backbone), Phase(total_epochs - first, self.everything())]

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        p = self.params
        alpha, temperature = float(p.alpha), p.temperature
        scale = temperature**2 if p.form == "t_squared" else 1.0
        *early, final = student_out.logits
        if len(plan.heads) < self.num_exits:  # the mixed schedule's backbone phase: the final exit alone
            return {"ce": F.cross_entropy(final, target)}
        if p.teacher == "ensemble":
            ensemble = torch.stack([F.log_softmax(z, dim=1) for z in student_out.logits]).mean(0)
            return {
                "ce": (1 - alpha) * sum(F.cross_entropy(z, target) for z in student_out.logits),
                "self_kd": alpha * scale * sum(soft_cross_entropy(z, ensemble, temperature) for z in student_out.logits),
            }
        return {
            "ce": F.cross_entropy(final, target) + (1 - alpha) * sum(F.cross_entropy(z, target) for z in early),
            "self_kd": alpha * scale * sum(soft_cross_entropy(z, final, temperature) for z in early),
        }
