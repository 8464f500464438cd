"""`skd`: Stagewise KD (Kulkarni et al., arXiv 1911.06786; docs/methods.md, "Stagewise KD").

As the reference code (IvLabs stagewise-knowledge-distillation) does, the stem is matched on its
own first, at its output, then each stage in turn, then the classifier: K + 2 equal phases for a
K-exit student. Where student or teacher has no separable stem (library models), the stem trains
with stage 1 and there are K + 1 phases.
- Stem phase: only the stem trains, L = MSE(a_0(stem^S), stem^T).
- Phase s <= K: only stage s trains (trunk s; the stem stays frozen), L = MSE(a_s(F_s^S), F_s^T).
  a_s is a 1x1 conv + BN adapter where channel widths differ, the identity otherwise (as in the paper).
- Last phase: the classifier with CE, no teacher (`final_loss: kd` uses the teacher's soft targets).
Everything else is frozen with its BatchNorm in eval mode (the reference code let frozen BN
statistics drift; edgekd does not). Each phase restarts the learning-rate schedule, as the
reference starts a new optimizer per stage.
Multi-exit adaptation [R]: exit head s trains with CE (or KD, `head_loss`) from the phase after
stage s is done until the end, while its trunk stays frozen.
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
from edgekd.methods.adapters import channel_adapter, stage_channels, stem_channels
from edgekd.methods.base import Method, Phase, Trainable, equal_phases
from edgekd.methods.losses import kd_loss, match_spatial
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs, MultiExitNet


class SKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    head_loss: Literal["ce", "kd"] = Field("ce", description="how early-exit heads learn once their stage is done")
    final_loss: Literal["ce", "kd"] = Field("ce", description="how the final classifier learns in the last phase "
                                            "(the paper: CE without the teacher)")
    temperature: float = Field(4.0, gt=0, description="for head_loss or final_loss: kd")


@METHODS.register("skd")
class StagewiseKD(Method[SKDParams]):
    Params = SKDParams
    min_teachers, max_teachers = 1, 1
    reads_student_features = True

    def __init__(self, params: SKDParams, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__(params, student, teachers)
        teacher = teachers[0]
        teacher_channels = stage_channels(teacher)
        if len(teacher_channels) < student.exit_stages[-1]:
            raise EdgekdError(f"Stagewise KD matches stages one to one: the student has {student.exit_stages[-1]} stages, "
                              f"the teacher {len(teacher_channels)}")
        self.teacher_stage = [s - 1 for s in student.exit_stages]  # teacher stage matched by each student trunk
        student_channels = [info.channels for info in student.exit_info]
        self.adapters = nn.ModuleList(channel_adapter(c, teacher_channels[t]) for c, t in zip(student_channels, self.teacher_stage))
        self.matches_stem = student.stem is not None and teacher.stem is not None
        self.stem_adapter = channel_adapter(stem_channels(student), stem_channels(teacher)) if self.matches_stem else None

    def phases(self, total_epochs: int) -> list[Phase]:
        k = self.num_exits
        stem = [Trainable(frozenset(), frozenset(), stem=True)] if self.matches_stem else []
        stages = [Trainable(frozenset({s}), frozenset(range(s)), stem=False if self.matches_stem else None) for s in range(k)]
        plans = [*stem, *stages, Trainable(frozenset(), frozenset(range(k)))]
        if total_epochs < len(plans):
            raise EdgekdError(f"Stagewise KD needs at least {len(plans)} epochs for a {k}-exit student (one phase "
                              f"{'for the stem, ' if stem else ''}per stage, plus the classifier), got train.epochs={total_epochs}")
        return [Phase(n, plan) for n, plan in zip(equal_phases(total_epochs, len(plans)), plans)]

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        p, teacher = self.params, teacher_outs[0]
        terms: dict[str, Tensor] = {}
        if plan.stem and self.stem_adapter is not None:
            mine, theirs = match_spatial(self.stem_adapter(student_out.stem), teacher.stem.detach())
            terms["mse"] = F.mse_loss(mine, theirs)
        for s in plan.trunks:
            mine, theirs = match_spatial(self.adapters[s](student_out.features[s]), teacher.stages[self.teacher_stage[s]].detach())
            terms["mse"] = F.mse_loss(mine, theirs)
        final = self.num_exits - 1
        for k in sorted(plan.heads):
            rule = p.final_loss if k == final else p.head_loss
            z = student_out.logits[k]
            term = F.cross_entropy(z, target) if rule == "ce" else kd_loss(z, teacher.logits[-1], p.temperature)
            terms[rule] = terms.get(rule, 0) + term
        return terms
