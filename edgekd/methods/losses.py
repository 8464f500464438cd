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


def soft_cross_entropy(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """-sum softmax(t/T) * log_softmax(s/T), mean over the batch, no T^2: BYOT's official soft term.
    It differs from KL(softmax(t/T) || softmax(s/T)) by the teacher's entropy, so the gradient is the same."""
    p_teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    return -(p_teacher * F.log_softmax(student_logits / temperature, dim=1)).sum(1).mean()


def _log_splits(logits: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """From logsumexp, never from 1 - p by subtraction: (B, 2) log [p_target, 1 - p_target] of
    softmax(logits), and (B, C) log of the softmax over the non-target classes (finite everywhere;
    meaningless at the target, which callers mask)."""
    log_total = torch.logsumexp(logits, dim=1, keepdim=True)
    log_rest = logits.masked_fill(mask, float("-inf")).logsumexp(1, keepdim=True)
    log_target = logits.gather(1, target[:, None])
    return torch.cat([log_target, log_rest], dim=1) - log_total, logits - log_rest


def decoupled_kl(student_logits: Tensor, teacher_logits: Tensor, target: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Per-sample TCKD and NCKD of DKD (Zhao et al. 2022), without the T^2 factor.

    TCKD = KL(b^T || b^S) over the binary (target, not target) split of softmax(z/T); NCKD =
    KL(p^T || p^S) over the non-target classes only. KD = TCKD + (1 - p_t^T) * NCKD. Both are
    computed in log space, so they stay exact in float32 when a probability underflows (extreme
    logits) or when p_t is within float rounding of 1 (docs/methods.md, DKD).
    """
    mask = F.one_hot(target, student_logits.shape[1]).bool()
    zs, zt = student_logits.float() / temperature, teacher_logits.detach().float() / temperature
    log_b_s, log_q_s = _log_splits(zs, target, mask)
    log_b_t, log_q_t = _log_splits(zt, target, mask)
    tckd = (log_b_t.exp() * (log_b_t - log_b_s)).sum(1)
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
