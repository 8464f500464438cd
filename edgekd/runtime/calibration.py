"""`edgekd calibrate`: pick the exit policy's thresholds on the validation split and store them in the bundle.

Only validation images are used, never test: `val/` of the data root if it has one, otherwise the
split the run itself carved from `train/` (same size and seed, from the manifest); without a data
root, the validation sample stored in the bundle at export. The promise carries sampling noise:
the command reports the binomial s.e. of the accuracy and the paired s.e. of the drop (the
final exit and the exits taken, judged on the same images), and `margin` holds extra points in
reserve.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from edgekd.bundle import read_manifest, write_manifest
from edgekd.bundle.manifest import Policy
from edgekd.runtime.evaluation import exit_logits, load_split, score_exits
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.policies import POLICIES, fit_temperature
from edgekd.runtime.thresholds import Outcome, binomial_se, calibrate, confidence_z


class Candidate(NamedTuple):
    """One policy's calibration on the validation logits."""

    policy: str
    temperature: bool
    thresholds: np.ndarray
    outcome: Outcome
    temperatures: list[float]
    correct: np.ndarray  # (K, N): every exit's correctness


def _search(model: EarlyExitModel, logits: list[np.ndarray], labels: np.ndarray, costs: np.ndarray, policy: str,
            temperature: bool, **objective: Any) -> Candidate:
    """Thresholds for one policy (with or without per-exit temperatures) on the validation logits."""
    temperatures = [fit_temperature(z, labels) for z in logits] if temperature else [1.0] * model.num_exits
    model.temperatures = temperatures
    scored = score_exits(model, logits, labels, policy)
    thresholds, result = calibrate(scored.scores, scored.correct, costs, **objective)
    return Candidate(policy, temperature, thresholds, result, temperatures, scored.correct)


def calibrate_bundle(bundle: str | Path, data: str | Path | None = None, *, target_drop: float | None = None, budget: float | None = None,
                     policy: str = "max_prob", temperature: bool = False, margin: float = 0.0, confidence: float | None = None,
                     log: Callable[[str], None] = print) -> Policy:
    """Choose thresholds on validation images and write them (and the policy) into the bundle's manifest.
    `policy='auto'` tries every registered policy with and without per-exit temperatures and keeps the
    one with the lowest validation cost (`target_drop`) or the best validation accuracy (`budget`)."""
    if policy != "auto":
        POLICIES.get(policy)  # an unknown name is refused before any image is read
    confidence_z(confidence, "target_drop" if target_drop is not None else "budget")  # a bad level is refused before any image is read
    model = EarlyExitModel(bundle)
    images, labels = load_split(model, data, "val")
    logits = exit_logits(model, images)
    costs = np.asarray(model.manifest.exit_costs())
    objective = {"target_drop": target_drop, "budget": budget, "margin": margin, "confidence": confidence}
    options = [(name, t) for name in POLICIES.names() for t in (False, True)] if policy == "auto" else [(policy, temperature)]
    tried = []
    for name, use_temperature in options:
        candidate = _search(model, logits, labels, costs, name, use_temperature, **objective)
        tried.append(candidate)
        if len(options) > 1:
            log(f"  {name:<9} {'temperature' if use_temperature else 'raw        '}  validation accuracy "
                f"{candidate.outcome.accuracy:6.2f}%  mean cost {candidate.outcome.cost:.3f}")
    rank = (lambda c: (c.outcome.cost, -c.outcome.accuracy)) if target_drop is not None else (lambda c: (-c.outcome.accuracy, c.outcome.cost))
    name, use_temperature, thresholds, result, temperatures, correct = min(tried, key=rank)
    final = 100.0 * correct[-1].mean()
    se, paired = binomial_se(result.accuracy, len(labels)), result.drop_se
    level = confidence or 0.95  # the bound reported, whether or not the search held one
    summary = Policy(**{
        "name": name, "temperatures": temperatures, "objective": "target_drop" if target_drop is not None else "budget",
        "target_drop": target_drop, "budget": budget, "margin": margin, "confidence": confidence, "val_images": len(labels),
        "val_accuracy": round(result.accuracy, 3), "val_final_exit_accuracy": round(final, 3),
        "val_mean_cost": round(result.cost, 4), "val_exit_counts": list(result.exit_counts), "binomial_se": round(se, 3),
        "drop_se": round(paired, 3),
    })
    manifest = read_manifest(bundle)
    manifest.policy, manifest.thresholds = summary, [float(t) for t in thresholds]
    write_manifest(Path(bundle), manifest)
    log(f"{name}{' with per-exit temperatures' if use_temperature else ''}: thresholds {', '.join(f'{t:.4f}' for t in thresholds)} "
        f"on {len(labels)} validation images: accuracy {result.accuracy:.2f}% (final exit {final:.2f}%, ±{se:.2f} binomial s.e.), "
        f"mean cost {result.cost:.3f} of the model's FLOPs, exits taken {list(result.exit_counts)}; "
        f"drop {final - result.accuracy:.2f} ± {paired:.2f} points (paired s.e.; one-sided "
        f"{100 * level:.0f}% bound for new data: {final - result.accuracy + confidence_z(level) * paired:.2f})")
    return summary
