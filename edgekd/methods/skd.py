"""`skd`: Stagewise KD (Kulkarni et al., arXiv 1911.06786).

The epochs are split into K + 1 equal phases for a K-exit student. In phase s <= K only trunk s
trains, to match the teacher's features at the same stage: L = MSE(a_s(F_s^S), F_s^T), with a_s a
1x1 conv + BN adapter where channel widths differ (identity otherwise, as in the paper). Every other
trunk is frozen with its BatchNorm in eval mode (the reference code let frozen BN statistics drift;
edgekd does not). The last phase trains the classifier with CE, no teacher.
Multi-exit adaptation [R] (METHODS.md section 6): exit head s trains with CE (or KD, `head_loss`)
from the phase after stage s is done until the end, while its trunk stays frozen.
The paper's data-efficiency setting is `data.train_fraction` (it used 10-40% of the training set).
Unlike the reference code, each phase continues from the last epoch of the previous one rather than
reloading its best-validation-loss checkpoint.
"""
from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from edgekd.errors import EdgekdError
from edgekd.methods.adapters import channel_adapter, stage_channels
from edgekd.methods.base import Method, Trainable
from edgekd.methods.losses import kd_loss, match_spatial
from edgekd.methods.mskd import phase_of
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs, MultiExitNet


class SKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    head_loss: Literal["ce", "kd"] = Field("ce", description="how exit heads learn once their stage is done")
    temperature: float = Field(4.0, gt=0, description="for head_loss: kd")


def skd_phase(epoch: int, total_epochs: int, num_exits: int) -> int:
    """Phase (1..K+1) of `epoch` (1-based): 1..K match stage features, K+1 trains the classifier."""
    phases = num_exits + 1
    if total_epochs < phases:
        raise EdgekdError(f"Stagewise KD needs at least {phases} epochs for a {num_exits}-exit student "
                          f"(one phase per stage plus the classifier), got train.epochs={total_epochs}")
    return phase_of(epoch, total_epochs, phases)


@METHODS.register("skd")
class StagewiseKD(Method):
    Params = SKDParams
    min_teachers, max_teachers = 1, 1
    reads_student_features = True

    def __init__(self, params: BaseModel, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__(params, student, teachers)
        teacher_channels = stage_channels(teachers[0])
        if len(teacher_channels) < student.exit_stages[-1]:
            raise EdgekdError(f"Stagewise KD matches stages one to one: the student has {student.exit_stages[-1]} stages, "
                              f"the teacher {len(teacher_channels)}")
        self.teacher_stage = [s - 1 for s in student.exit_stages]  # teacher stage matched by each student trunk
        student_channels = [info.channels for info in student.exit_info]
        self.adapters = nn.ModuleList(channel_adapter(c, teacher_channels[t]) for c, t in zip(student_channels, self.teacher_stage))
        self.num_exits = student.num_exits
        self.phase = 1

    def trainable(self, epoch: int, total_epochs: int) -> Trainable:
        self.phase = skd_phase(epoch, total_epochs, self.num_exits)
        trunks = frozenset({self.phase - 1}) if self.phase <= self.num_exits else frozenset()
        return Trainable(trunks=trunks, heads=frozenset(range(self.phase - 1)))

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *, epoch: int, step: int) -> dict[str, Tensor]:
        p: SKDParams = self.params  # type: ignore[assignment]
        terms: dict[str, Tensor] = {}
        s = self.phase - 1
        if s < self.num_exits:
            mine, theirs = match_spatial(self.adapters[s](student_out.features[s]), teacher_outs[0].stages[self.teacher_stage[s]].detach())
            terms["mse"] = F.mse_loss(mine, theirs)
        done = student_out.logits[:s]
        if done:
            if p.head_loss == "ce":
                terms["ce"] = sum(F.cross_entropy(z, target) for z in done)
            else:
                terms["kd"] = sum(kd_loss(z, teacher_outs[0].logits[-1], p.temperature) for z in done)
        return terms
