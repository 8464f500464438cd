"""`self_kd`: self-distillation, the student's final exit teaches its earlier exits (BYOT's response
term, Zhang et al. ICCV 2019; METHODS.md section 4.3). No teacher network.

L = CE(z_K, y) + sum over k < K of [(1 - alpha) * CE(z_k, y) + alpha * T^2 * KL(softmax(sg(z_K)/T) || softmax(z_k/T))]
The final exit's logits are detached, so it learns from the labels alone. T=3 and alpha=0.3 are the
official code's values; T^2 is applied (edgekd's convention, METHODS.md). BYOT's feature term
(shallow features regressed onto the deepest) is not part of this method.
"""
from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from edgekd.methods.base import Method
from edgekd.methods.losses import kd_loss
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs


class SelfKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(3.0, gt=0)
    alpha: float = Field(0.3, ge=0, le=1, description="share of the final exit's soft targets at each earlier exit")


@METHODS.register("self_kd")
class SelfKD(Method):
    Params = SelfKDParams

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *, epoch: int, step: int) -> dict[str, Tensor]:
        p: SelfKDParams = self.params  # type: ignore[assignment]
        *early, final = student_out.logits
        return {
            "ce": F.cross_entropy(final, target) + (1 - p.alpha) * sum(F.cross_entropy(z, target) for z in early),
            "self_kd": p.alpha * sum(kd_loss(z, final, p.temperature) for z in early),
        }
