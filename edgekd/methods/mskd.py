"""`mskd`: Multiple-Stage KD (Xu et al., Appl. Sci. 2022): every exit imitates the teacher's output.

L = sum over active exits k of [(1 - alpha) * CE(z_k, y) + alpha * T^2 * KL(softmax(z^T/T) || softmax(z_k/T))]
with z^T the teacher's final logits. Reconstructed [R] (METHODS.md section 5): the paper's exact
schedule is not available, so both readings are offered:
- `schedule: joint`: every exit trains at every step.
- `schedule: phased`: the epochs are split into K equal phases; phase k trains stages and heads
  1..k with the losses of exits 1..k (earlier exits keep training), the last phase is joint.
The final prediction is the ensemble of exits (mean softmax), reported next to every exit.
"""
from __future__ import annotations

import math
from typing import Literal

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from edgekd.methods.base import Method, Trainable
from edgekd.methods.losses import kd_loss
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs, MultiExitNet


class MSKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1, description="KD share; CE gets 1 - alpha")
    schedule: Literal["joint", "phased"] = "joint"


def phase_of(epoch: int, total_epochs: int, num_exits: int) -> int:
    """Exits trained in `epoch` (1-based) when `total_epochs` are split into `num_exits` phases."""
    return min(num_exits, max(1, math.ceil(epoch * num_exits / total_epochs)))


@METHODS.register("mskd")
class MSKD(Method):
    Params = MSKDParams
    min_teachers, max_teachers = 1, 1
    reads_teacher_features = False

    def __init__(self, params: BaseModel, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__(params, student, teachers)
        self.num_exits = student.num_exits
        self.active = self.num_exits

    def trainable(self, epoch: int, total_epochs: int) -> Trainable | None:
        p: MSKDParams = self.params  # type: ignore[assignment]
        if p.schedule == "joint":
            return None
        self.active = phase_of(epoch, total_epochs, self.num_exits)
        return Trainable.first_exits(self.active)

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *, epoch: int, step: int) -> dict[str, Tensor]:
        p: MSKDParams = self.params  # type: ignore[assignment]
        teacher_final = teacher_outs[0].logits[-1]
        exits = student_out.logits[: self.active]
        return {
            "ce": (1 - p.alpha) * sum(F.cross_entropy(z, target) for z in exits),
            "kd": p.alpha * sum(kd_loss(z, teacher_final, p.temperature) for z in exits),
        }
