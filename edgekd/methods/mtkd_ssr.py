"""`mtkd_ssr`: multi-target KD via student self-reflection (Gou et al., IJCV 2023). Reconstructed [R].

Only the paper's abstract is available (docs/methods.md, "MTKD-SSR"); the form below is edgekd's
reconstruction, with every weight a recipe field. Teacher and student both have an exit per stage
(the teacher's heads trained on the frozen teacher with CE: `exit_heads: frozen`).
- SCD, stage-wise channel distillation: sum_s mean_{b,c} (GAP(phi_s(F_s^S)) - GAP(F_s^T))^2,
  phi_s a 1x1 conv + BN onto the teacher's channels.
- SRD, stage-wise response distillation: sum_s T^2 KL(softmax(z_s^T/T) || softmax(z_s^S/T)).
- CRD, cross-stage review distillation (the self-reflection): each exit learns from the student's
  own next exit (`crd_source: next`) or its final exit (`final`), detached:
  sum_{s<S} T^2 KL(softmax(sg(z_src)/T) || softmax(z_s^S/T)).
L = sum_s CE(z_s^S, y) + scd * L_SCD + srd * L_SRD + crd * L_CRD.
"""
from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from edgekd.errors import EdgekdError
from edgekd.methods.adapters import channel_adapter, stage_channels
from edgekd.methods.base import Method, Trainable
from edgekd.methods.losses import kd_loss
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs, MultiExitNet


class MTKDSSRParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(4.0, gt=0)
    scd: float = Field(1.0, ge=0, description="weight of stage-wise channel distillation (lambda_1)")
    srd: float = Field(1.0, ge=0, description="weight of stage-wise response distillation (lambda_2)")
    crd: float = Field(1.0, ge=0, description="weight of cross-stage review distillation (lambda_3)")
    crd_source: Literal["next", "final"] = Field("next", description="which of the student's own exits teaches exit s")


def channel_distillation(student_map: Tensor, teacher_map: Tensor) -> Tensor:
    """Mean over batch and channels of the squared difference of globally pooled channels."""
    return (student_map.mean((2, 3)) - teacher_map.detach().mean((2, 3))).pow(2).mean()


@METHODS.register("mtkd_ssr")
class MTKDSSR(Method[MTKDSSRParams]):
    Params = MTKDSSRParams
    min_teachers, max_teachers = 1, 1
    reads_student_features = True

    def __init__(self, params: MTKDSSRParams, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__(params, student, teachers)
        teacher = teachers[0]
        if teacher.num_exits != student.num_exits:
            raise EdgekdError(f"method 'mtkd_ssr' pairs stages one to one, but the teacher has {teacher.num_exits} exit(s) and "
                              f"the student {student.num_exits}; give the teacher as many exits (teachers.0.model.exits)")
        if student.num_exits < 2:
            raise EdgekdError("method 'mtkd_ssr' distils stage by stage and needs a multi-exit student; set student.exits: all")
        teacher_channels = [stage_channels(teacher)[s - 1] for s in teacher.exit_stages]
        self.adapters = nn.ModuleList(channel_adapter(info.channels, c, always=True)
                                      for info, c in zip(student.exit_info, teacher_channels))

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        p = self.params
        z_s, z_t = student_out.logits, teacher_outs[0].logits
        feats_s, feats_t = student_out.features, teacher_outs[0].features
        sources = z_s[1:] if p.crd_source == "next" else [z_s[-1]] * (len(z_s) - 1)
        return {
            "ce": sum(F.cross_entropy(z, target) for z in z_s),
            "scd": p.scd * sum(channel_distillation(phi(f), g) for phi, f, g in zip(self.adapters, feats_s, feats_t)),
            "srd": p.srd * sum(kd_loss(s, t, p.temperature) for s, t in zip(z_s, z_t)),
            "crd": p.crd * sum(kd_loss(s, src.detach(), p.temperature) for s, src in zip(z_s[:-1], sources)),
        }
