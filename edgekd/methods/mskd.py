"""`mskd`: Multiple-Stage KD (Xu et al., Appl. Sci. 2022): every exit imitates the teacher's output.

L = sum over active exits k of [(1 - alpha) * CE(z_k, y) + alpha * T^2 * KL(softmax(z^T/T) || softmax(z_k/T))]
with z^T the teacher's final logits. Reconstructed [R] (docs/methods.md, "MSKD and OtO"): the paper's exact
schedule is not available, so both readings are offered:
- `schedule: joint`: every exit trains at every step.
- `schedule: phased`: the epochs are split into K equal phases; phase k trains stages and heads
  1..k with the losses of exits 1..k (earlier exits keep training), the last phase is joint.
  The learning-rate schedule restarts at each phase (the trainer does that for every phased
  method), so each new stage trains at the full rate: "phased recursive training".
The final prediction is the ensemble of exits (mean softmax), reported next to every exit.
"""
from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from edgekd.methods.base import Method, Phase, Trainable, equal_phases
from edgekd.methods.losses import kd_loss
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs


class MSKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1, description="KD share; CE gets 1 - alpha")
    schedule: Literal["joint", "phased"] = "joint"


@METHODS.register("mskd")
class MSKD(Method[MSKDParams]):
    Params = MSKDParams
    min_teachers, max_teachers = 1, 1
    reads_teacher_features = False

    def phases(self, total_epochs: int) -> list[Phase]:
        if self.params.schedule == "joint":
            return super().phases(total_epochs)
        lengths = equal_phases(total_epochs, self.num_exits)
        return [Phase(n, Trainable.first_exits(k + 1)) for k, n in enumerate(lengths) if n]

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        p = self.params
        teacher_final = teacher_outs[0].logits[-1]
        exits = [z for k, z in enumerate(student_out.logits) if k in plan.heads]
        return {
            "ce": (1 - p.alpha) * sum(F.cross_entropy(z, target) for z in exits),
            "kd": p.alpha * sum(kd_loss(z, teacher_final, p.temperature) for z in exits),
        }
