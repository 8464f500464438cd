"""Loss functions shared by several methods."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Hinton KD: T^2 * KL(softmax(t/T) || softmax(s/T)), summed over classes, mean over the batch.
    The T^2 keeps the gradient scale independent of T."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2


def decoupled_kl(student_logits: Tensor, teacher_logits: Tensor, target: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Per-sample TCKD and NCKD of DKD (Zhao et al. 2022), without the T^2 factor.

    TCKD = KL(b^T || b^S) over the binary (target, not target) split of softmax(z/T);
    NCKD = KL(p^T || p^S) over the non-target classes only. KD = TCKD + (1 - p_t^T) * NCKD.
    """
    mask = F.one_hot(target, student_logits.shape[1]).bool()
    p_s = F.softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits.detach() / temperature, dim=1)
    b_s = torch.stack([p_s[mask], 1 - p_s[mask]], dim=1).clamp_min(1e-8)  # clamp: log of fp16 softmax (DKD pitfall)
    b_t = torch.stack([p_t[mask], 1 - p_t[mask]], dim=1).clamp_min(1e-8)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1)
    # Non-target distributions: push the target logit to -inf (mdistiller subtracts 1000).
    log_q_s = F.log_softmax(student_logits / temperature - 1000.0 * mask, dim=1)
    log_q_t = F.log_softmax(teacher_logits.detach() / temperature - 1000.0 * mask, dim=1)
    nckd = (log_q_t.exp() * (log_q_t - log_q_s)).masked_fill(mask, 0.0).sum(1)
    return tckd, nckd


def early_exits_ce(student_logits: list[Tensor], target: Tensor, weight: float) -> dict[str, Tensor]:
    """`{"ce_early": weight * sum CE}` over every exit but the last (empty for a single-exit net):
    how final-exit methods keep a multi-exit student's earlier exits usable."""
    if len(student_logits) < 2:
        return {}
    return {"ce_early": weight * sum(F.cross_entropy(z, target) for z in student_logits[:-1])}


def match_spatial(student_map: Tensor, teacher_map: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool whichever feature map is larger to the other's size (ResNet vs VGG strides differ)."""
    hs, ht = student_map.shape[-2:], teacher_map.shape[-2:]
    if hs == ht:
        return student_map, teacher_map
    size = (min(hs[0], ht[0]), min(hs[1], ht[1]))
    return F.adaptive_avg_pool2d(student_map, size), F.adaptive_avg_pool2d(teacher_map, size)


def entropy(logits: Tensor) -> Tensor:
    """Per-sample entropy (nats) of softmax(logits)."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(1)
