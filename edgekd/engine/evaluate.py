"""Per-exit top-1/top-5 and the two ensembles of exits, summed across DDP ranks.

`ensemble_top1` is the mean of the exits' softmax outputs: the ensemble edgekd selects with and the
runtime answers with (bounded per exit, so one exit with large logits cannot outvote the rest).
`ensemble_logit_top1` is the mean of their logits, what BYOT's code reports; both are recorded.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.utils.data import DataLoader

from edgekd.engine.distributed import DistInfo, all_reduce_sum
from edgekd.models import MultiExitNet


@torch.no_grad()
def evaluate(
    model: MultiExitNet, loader: DataLoader, device: torch.device, *,
    amp_dtype: torch.dtype | None = None, info: DistInfo = DistInfo(),
    channels_last: bool = False,
) -> dict[str, Any]:
    """Accuracy (%) of every exit, of the mean-softmax ensemble and of the mean-logit one on `loader`."""
    was_training = model.training
    model.eval()
    k = model.num_exits
    correct = torch.zeros(2, k + 2, dtype=torch.float64)  # rows: top-1, top-5; last columns: the two ensembles
    seen = torch.zeros(1, dtype=torch.float64)
    for images, target in loader:
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with amp:
            logits = model(images).logits
        probs = [z.float().softmax(dim=1) for z in logits]
        mean_logits = torch.stack([z.float() for z in logits]).mean(0)
        for j, p in enumerate([*probs, torch.stack(probs).mean(0), mean_logits]):
            top = p.topk(min(5, p.shape[1]), dim=1).indices
            hits = top.eq(target[:, None])
            correct[0, j] += hits[:, 0].sum().item()
            correct[1, j] += hits.any(dim=1).sum().item()
        seen += len(target)
    all_reduce_sum(correct, info)
    all_reduce_sum(seen, info)
    model.train(was_training)
    acc = (100.0 * correct / seen.clamp(min=1)).tolist()
    return {
        "top1": [round(a, 3) for a in acc[0][:k]],
        "top5": [round(a, 3) for a in acc[1][:k]],
        "ensemble_top1": round(acc[0][k], 3),
        "ensemble_top5": round(acc[1][k], 3),
        "ensemble_logit_top1": round(acc[0][k + 1], 3),
        "ensemble_logit_top5": round(acc[1][k + 1], 3),
        "images": int(seen.item()),
    }
