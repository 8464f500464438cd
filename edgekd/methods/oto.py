"""`oto`: One-to-One Multiple-Stage KD (Xu et al., Appl. Sci. 2022): teacher exit k teaches student exit k.

L = sum over exits k of [(1 - alpha) * CE(z_k^S, y) + alpha * T^2 * KL(softmax(z_k^T/T) || softmax(z_k^S/T))]
The teacher has the same number of exits as the student (its `model.exits`); how it gets them is the
teacher's `exit_heads` setting: heads trained with CE on the frozen teacher, or a multi-exit teacher
trained from scratch. Reconstructed [R] (docs/methods.md, "MSKD and OtO"): T and alpha follow MSKD's defaults.
The final prediction is the ensemble of exits (mean softmax), reported next to every exit.
"""
from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from edgekd.errors import EdgekdError
from edgekd.methods.base import Method, Trainable
from edgekd.methods.losses import kd_loss
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs, MultiExitNet


class OtOParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1, description="KD share; CE gets 1 - alpha")


@METHODS.register("oto")
class OtO(Method[OtOParams]):
    Params = OtOParams
    min_teachers, max_teachers = 1, 1
    reads_teacher_features = False

    def __init__(self, params: OtOParams, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__(params, student, teachers)
        if teachers[0].num_exits != student.num_exits:
            raise EdgekdError(f"method 'oto' pairs exits one to one, but the teacher has {teachers[0].num_exits} exit(s) and the "
                              f"student {student.num_exits}; give the teacher as many exits (teachers.0.model.exits)")

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        p = self.params
        pairs = list(zip(student_out.logits, teacher_outs[0].logits))
        return {
            "ce": (1 - p.alpha) * sum(F.cross_entropy(z, target) for z, _ in pairs),
            "kd": p.alpha * sum(kd_loss(z, t, p.temperature) for z, t in pairs),
        }
