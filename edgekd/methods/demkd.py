"""`demkd`: entropy-weighted decoupled multi-teacher KD (DE-MKD, Cheng et al., Mathematics 2024). Reconstructed [R].

Only the abstract is available (docs/methods.md, "DE-MKD"); the form below is edgekd's reconstruction.
Per sample b, teacher k gets a weight w_{k,b} from its prediction entropy H_{k,b} (confident teachers
weigh more), summing to 1 over teachers (`weighting`):
- `entropy_softmax`: w = softmax_k(-H_k)                              (primary)
- `ebkd`:            w = (1 - H_k / sum_j H_j) / (K - 1)             (EBKD, normalised to sum 1)
- `ca_mkd`:          w = (1 - softmax_k(CE(z_k^T, y))) / (K - 1)     (CA-MKD; uses the labels)
L_logit = mean_b sum_k w_{k,b} T^2 (alpha TCKD_{k,b} + beta NCKD_{k,b})   (DKD's terms per teacher)
L_feat  = sum_k mean_b w_{k,b} MSE_b(r_k(F^S), F_k^T)   on the penultimate stage, r_k a 1x1 conv + BN
L = CE(z_K, y) + min(epoch / warmup, 1) L_logit + gamma L_feat  (+ early_ce * CE at earlier exits)
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from edgekd.errors import EdgekdError
from edgekd.methods.adapters import channel_adapter, stage_channels
from edgekd.methods.base import Method, Trainable
from edgekd.methods.losses import decoupled_kl, early_exits_ce, entropy, match_spatial
from edgekd.methods.registry import METHODS
from edgekd.models import ExitOutputs, MultiExitNet


class DEMKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(1.0, ge=0, description="TCKD weight")
    beta: float = Field(8.0, ge=0, description="NCKD weight")
    warmup: int = Field(20, ge=1, description="epochs over which the logit term ramps up linearly")
    weighting: Literal["entropy_softmax", "ebkd", "ca_mkd"] = "entropy_softmax"
    gamma: float = Field(50.0, ge=0, description="weight of the feature term; 0 turns it off")
    early_ce: float = Field(1.0, ge=0, description="weight of CE on each earlier exit")


def teacher_weights(teacher_logits: list[Tensor], target: Tensor, weighting: str) -> Tensor:
    """(K, B) per-sample teacher weights, each column summing to 1; lower entropy, more weight."""
    if len(teacher_logits) == 1:
        return torch.ones(1, len(target), device=target.device)
    k = len(teacher_logits)
    if weighting == "entropy_softmax":
        return torch.stack([-entropy(z) for z in teacher_logits]).softmax(0)
    if weighting == "ebkd":
        h = torch.stack([entropy(z) for z in teacher_logits])
        return (1 - h / h.sum(0).clamp_min(1e-12)) / (k - 1)
    ce = torch.stack([F.cross_entropy(z, target, reduction="none") for z in teacher_logits])
    return (1 - ce.softmax(0)) / (k - 1)


@METHODS.register("demkd")
class DEMKD(Method[DEMKDParams]):
    Params = DEMKDParams
    min_teachers, max_teachers = 1, None
    reads_student_features = True

    @classmethod
    def features_read(cls, params: DEMKDParams) -> tuple[bool, bool]:
        """The feature term (gamma > 0) reads both sides' penultimate stage; without it DE-MKD is logits only."""
        return (params.gamma > 0,) * 2

    def __init__(self, params: DEMKDParams, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__(params, student, teachers)
        self.regressors = nn.ModuleList()
        if params.gamma > 0:
            if len(student.stage_modules) < 2:
                raise EdgekdError("method 'demkd' reads the penultimate stage's features (gamma > 0); the student has a "
                                  "single stage. Set method.gamma: 0 for the logit terms only")
            student_channels = stage_channels(student)[-2]
            self.regressors.extend(channel_adapter(student_channels, stage_channels(t)[-2], always=True) for t in teachers)

    def loss(self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
             epoch: int, step: int, plan: Trainable) -> dict[str, Tensor]:
        p = self.params
        final = student_out.logits[-1]
        teacher_logits = [out.logits[-1].detach() for out in teacher_outs]
        weights = teacher_weights(teacher_logits, target, p.weighting)
        per_teacher = []
        for z_t in teacher_logits:
            tckd, nckd = decoupled_kl(final, z_t, target, p.temperature)
            per_teacher.append(p.temperature**2 * (p.alpha * tckd + p.beta * nckd))
        terms = {
            "ce": F.cross_entropy(final, target),
            "dkd": min(epoch / p.warmup, 1.0) * (weights * torch.stack(per_teacher)).sum(0).mean(),
            **early_exits_ce(student_out.logits, target, p.early_ce),
        }
        if p.gamma > 0:
            f_s = student_out.stages[-2]
            mse = []
            for regressor, out in zip(self.regressors, teacher_outs):
                mine, theirs = match_spatial(regressor(f_s), out.stages[-2].detach())
                mse.append((mine - theirs).pow(2).flatten(1).mean(1))
            terms["feat"] = p.gamma * (weights * torch.stack(mse)).sum(0).mean()
        return terms
