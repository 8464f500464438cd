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

from edgekd.export.bundle import read_manifest, write_manifest
from edgekd.export.calibration import from_pixels
from edgekd.runtime.folder import split_images
from edgekd.runtime.images import open_image, preprocess
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.policies import POLICIES, fit_temperature
from edgekd.runtime.thresholds import Outcome, binomial_se, calibrate, confidence_z
from edgekd.errors import BadInput


def stored_validation(model: EarlyExitModel) -> tuple[np.ndarray, np.ndarray]:
    """The validation sample the bundle carries (see `edgekd export`), normalized."""
    entry = model.manifest.get("validation_sample")
    if not entry:
        raise BadInput(f"{model.bundle} stores no validation images (the run's data was not available at export); "
                       f"pass --data with the dataset's folder")
    with np.load(model.bundle / entry["file"]) as stored:
        pixels, labels = stored["images"], stored["labels"]
    spec = model.manifest["preprocess"]
    return from_pixels(pixels, spec["mean"], spec["std"]), labels


def load_split(model: EarlyExitModel, root: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed images and labels of `split` ('val' or 'test') under `root`, checked against the bundle's
    classes; without `root`, the bundle's own validation sample."""
    if root is None:
        if split != "val":
            raise BadInput(f"measuring on the {split} split needs --data with the dataset's folder")
        return stored_validation(model)
    root = Path(root)
    paths, labels, classes = split_images(root, split, model.manifest.get("validation"))
    if sorted(classes) != sorted(model.classes):
        raise BadInput(f"the class folders under {root} ({', '.join(classes[:5])}...) are not the bundle's classes "
                       f"({', '.join(model.classes[:5])}...)")
    to_bundle = np.asarray([model.classes.index(name) for name in classes])  # folder order -> the bundle's label order
    images = np.stack([preprocess(open_image(p), model.manifest["preprocess"]) for p in paths])
    return images, to_bundle[labels]


def exit_logits(model: EarlyExitModel, images: np.ndarray, batch: int = 256) -> list[np.ndarray]:
    """Logits of every exit for every image, through the `full` graph."""
    session = model.session("full")
    chunks = [session.run(None, {"image": images[i:i + batch]}) for i in range(0, len(images), batch)]
    return [np.concatenate([c[k] for c in chunks]) for k in range(model.num_exits)]


def exit_costs(manifest: dict[str, Any]) -> np.ndarray:
    """FLOPs of leaving at each exit (earlier heads included) as a fraction of the plain model."""
    full = manifest["exits"][-1]["flops"]
    return np.asarray([e["cumulative_flops"] / full for e in manifest["exits"]])


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
    scored = [model.scores(z, k, policy) for k, z in enumerate(logits)]
    scores = np.stack([s for _, s in scored])
    correct = np.stack([p.argmax(1) == labels for p, _ in scored])
    thresholds, result = calibrate(scores, correct, costs, **objective)
    return Candidate(policy, temperature, thresholds, result, temperatures, correct)


def calibrate_bundle(bundle: str | Path, data: str | Path | None = None, *, target_drop: float | None = None, budget: float | None = None,
                     policy: str = "max_prob", temperature: bool = False, margin: float = 0.0, confidence: float | None = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Choose thresholds on validation images and write them (and the policy) into the bundle's manifest.
    `policy='auto'` tries every registered policy with and without per-exit temperatures and keeps the
    one with the lowest validation cost (`target_drop`) or the best validation accuracy (`budget`)."""
    if policy != "auto":
        POLICIES.get(policy)  # an unknown name is refused before any image is read
    confidence_z(confidence, "target_drop" if target_drop is not None else "budget")  # a bad level is refused before any image is read
    model = EarlyExitModel(bundle)
    images, labels = load_split(model, data, "val")
    logits = exit_logits(model, images)
    costs = exit_costs(model.manifest)
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
    summary = {
        "name": name, "temperatures": temperatures, "objective": "target_drop" if target_drop is not None else "budget",
        "target_drop": target_drop, "budget": budget, "margin": margin, "confidence": confidence, "val_images": len(labels),
        "val_accuracy": round(result.accuracy, 3), "val_final_exit_accuracy": round(final, 3),
        "val_mean_cost": round(result.cost, 4), "val_exit_counts": list(result.exit_counts), "binomial_se": round(se, 3),
        "drop_se": round(paired, 3),
    }
    manifest = read_manifest(bundle)
    manifest["policy"], manifest["thresholds"] = summary, [float(t) for t in thresholds]
    write_manifest(Path(bundle), manifest)
    log(f"{name}{' with per-exit temperatures' if use_temperature else ''}: thresholds {', '.join(f'{t:.4f}' for t in thresholds)} "
        f"on {len(labels)} validation images: accuracy {result.accuracy:.2f}% (final exit {final:.2f}%, ±{se:.2f} binomial s.e.), "
        f"mean cost {result.cost:.3f} of the model's FLOPs, exits taken {list(result.exit_counts)}; "
        f"drop {final - result.accuracy:.2f} ± {paired:.2f} points (paired s.e.; one-sided "
        f"{100 * level:.0f}% bound for new data: {final - result.accuracy + confidence_z(level) * paired:.2f})")
    return summary
