"""`edgekd calibrate`: pick the exit policy's thresholds on the validation split and store them in the bundle.

Only validation images are used, never test: `val/` of the data root if it has one, otherwise the
split the run itself carved from `train/` (same size and seed, from the manifest); without a data
root, the validation sample stored in the bundle at export.

Without a confidence level the thresholds are searched on every validation image and the command
reports what they measured there, with the binomial s.e. of the accuracy and the paired s.e. of
the drop; that is no promise for new data (the search picked the best of many points on these
images). With `confidence`, the images are split in half: the policy, its temperatures and the
threshold points come from the search half, and the target is certified on the certify half
(`certify`), so that P(drop <= target) >= confidence holds for new i.i.d. data.

The drop is always measured against the final exit alone, the plain model. The final exit may answer
with the ensemble of every exit instead (`final_ensemble`, `runtime.trail`): that is decided where the
thresholds are searched, by which of the two reaches the objective more cheaply (or more accurately).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from edgekd.bundle import read_manifest, write_manifest
from edgekd.bundle.manifest import FP32, DropTest, Policy
from edgekd.errors import BadInput
from edgekd.runtime.certify import Certified, certify_in_sequence, check_confidence, frontier, images_needed, signed_drops, split_halves
from edgekd.runtime.evaluation import ExitScores, exit_logits, load_split, score_exits
from edgekd.runtime.gate import fit_gate
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.policies import POLICIES, fit_temperature
from edgekd.runtime.score_quality import drop_event_auroc
from edgekd.runtime.thresholds import Outcome, assign_exits, binomial_se, calibrate
from edgekd.runtime.trail import ExitTrail

Log = Callable[[str], None]


class Choice(NamedTuple):
    """A policy and its options: what `calibrate` tries and writes into the manifest."""

    policy: str
    temperature: bool = False
    running_ensemble: bool = False
    agreement: bool = False
    gate: bool = False
    final_ensemble: bool = False

    @property
    def description(self) -> str:
        """The policy's name and options, as the log says them."""
        final = ", the final exit answering with every exit's ensemble" if self.final_ensemble else ""
        if self.gate:
            return "learned gate" + (" on the running ensemble" if self.running_ensemble else "") + \
                (" with per-exit temperatures" if self.temperature else "") + final
        options = [label for label, on in (("per-exit temperatures", self.temperature), ("running ensemble", self.running_ensemble),
                                           ("agreement", self.agreement)) if on]
        return self.policy + (f" with {', '.join(options)}" if options else "") + final


class Scored(NamedTuple):
    """One choice's view of the validation images: its temperatures (and gate), every exit's scores and
    correctness (K, N) on all of them, and each early exit's drop-event AUROC on the images it was fitted on
    (a gate's out of fold, see `_score`)."""

    choice: Choice
    temperatures: list[float]
    gate: list[np.ndarray]
    scores: np.ndarray
    correct: np.ndarray
    auroc: list[float]

    @property
    def mean_auroc(self) -> float:
        known = [a for a in self.auroc if not np.isnan(a)]
        return float(np.mean(known)) if known else 0.5


def _gate_examples(logits: list[np.ndarray], labels: np.ndarray, choice: Choice,
                   temperatures: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per early exit, every image's gate features and whether leaving there causes no drop event."""
    trail = ExitTrail(POLICIES.get(choice.policy), temperatures, choice.running_ensemble)
    final_right = logits[-1].argmax(1) == labels
    examples = []
    for k, z in enumerate(logits[:-1]):
        probs, features = trail.look(z, k)
        examples.append((features, (probs.argmax(1) == labels) | ~final_right))
    return examples


def _score(model: EarlyExitModel, logits: list[np.ndarray], labels: np.ndarray, choice: Choice, temperatures: list[float],
           fit: np.ndarray) -> Scored:
    """Scores of one policy with its options (a gate fitted on the `fit` rows), and each early exit's drop-event
    AUROC on the `fit` rows: a gate's out of fold (fitted on one half of them, scored on the other, both ways),
    since its weights would flatter it on their own images."""
    def walk(gate: list[np.ndarray]) -> ExitScores:
        model.policy_name, model.temperatures, model.gate = choice.policy, temperatures, gate
        model.running_ensemble, model.agreement, model.final_ensemble = choice.running_ensemble, choice.agreement, False
        return score_exits(model, logits, labels)

    if not choice.gate:
        scored = walk([])
        return Scored(choice, temperatures, [], scored.scores, scored.correct,
                      drop_event_auroc(scored.scores[:, fit], scored.correct[:, fit]))
    examples = _gate_examples(logits, labels, choice, temperatures)

    def fitted_on(rows: np.ndarray) -> list[np.ndarray]:
        return [fit_gate(features[rows], safe[rows]) for features, safe in examples]

    folds = [fit[half] for half in split_halves(labels[fit])]
    held_out = [walk(fitted_on(folds[1 - i])) for i in range(2)]
    scores = np.concatenate([held.scores[:, rows] for held, rows in zip(held_out, folds)], axis=1)
    correct = np.concatenate([held.correct[:, rows] for held, rows in zip(held_out, folds)], axis=1)
    gate = fitted_on(fit)
    scored = walk(gate)
    return Scored(choice, temperatures, gate, scored.scores, scored.correct, drop_event_auroc(scores, correct))


def _choose_policy(model: EarlyExitModel, logits: list[np.ndarray], labels: np.ndarray, asked: Choice, fit: np.ndarray,
                   log: Log) -> Scored:
    """The policy asked for, or with `auto` the one (each policy with and without temperatures, running ensemble
    and agreement, and the learned gate with and without the running ensemble) whose scores best predict the
    drop event on the `fit` rows: the highest mean drop-event AUROC over the early exits. Temperatures and the
    gate are fitted on the `fit` rows (the gate's AUROC is out of fold, see `_score`)."""
    if asked.policy == "auto":
        options = [Choice(name, t, e, a) for name in POLICIES.names() for t in (False, True) for e in (False, True) for a in (False, True)]
        options += [Choice("max_prob", True, e, gate=True) for e in (False, True)]
    else:
        options = [asked]
    fitted = {t: [fit_temperature(z[fit], labels[fit]) for z in logits] if t else [1.0] * model.num_exits
              for t in {o.temperature for o in options}}
    tried = [_score(model, logits, labels, o, fitted[o.temperature], fit) for o in options]
    if len(tried) > 1:
        log(f"drop-event AUROC per early exit on {len(fit)} validation images (exit wrong where the final exit is right):")
        for s in tried:
            log(f"  {' '.join(f'{a:.3f}' for a in s.auroc)}  mean {s.mean_auroc:.3f}  {s.choice.description}")
    return max(tried, key=lambda s: s.mean_auroc)  # the first of equals: max_prob, raw


def _with_final_ensemble(chosen: Scored, logits: list[np.ndarray], labels: np.ndarray) -> Scored:
    """`chosen` with the final exit answering with the geometric ensemble of every exit (`runtime.trail`): only
    what the final exit answers changes, so only the last row of `correct` does (the final exit's score routes nothing)."""
    trail = ExitTrail(POLICIES.get(chosen.choice.policy), chosen.temperatures, final_ensemble=True)
    answers = [trail.step(z, k)[0] for k, z in enumerate(logits)]
    correct = chosen.correct.copy()
    correct[-1] = answers[-1].argmax(1) == labels
    return chosen._replace(choice=chosen.choice._replace(final_ensemble=True), correct=correct)


def _choose_final_answer(chosen: Scored, logits: list[np.ndarray], labels: np.ndarray, reference: np.ndarray, asked: Choice,
                         fit: np.ndarray, costs: np.ndarray, objective: dict[str, Any], log: Log) -> Scored:
    """`chosen` with the final exit answering alone or with every exit's ensemble: as asked, or with `--policy auto`
    the one whose thresholds on the `fit` rows reach the objective (target drop or budget) more cheaply (more
    accurately), the final exit alone where they tie."""
    if asked.final_ensemble:
        return _with_final_ensemble(chosen, logits, labels)
    if asked.policy != "auto":
        return chosen
    with_ensemble = _with_final_ensemble(chosen, logits, labels)
    outcomes = [calibrate(s.scores[:, fit], s.correct[:, fit], costs, reference=reference[fit], **objective)[1]
                for s in (chosen, with_ensemble)]
    log(f"the final exit answering alone ({100 * chosen.correct[-1, fit].mean():.2f}% on these images): cost "
        f"{outcomes[0].cost:.3f}, accuracy {outcomes[0].accuracy:.2f}%; with every exit's ensemble "
        f"({100 * with_ensemble.correct[-1, fit].mean():.2f}%): cost {outcomes[1].cost:.3f}, accuracy {outcomes[1].accuracy:.2f}%")
    alone, ensemble = ((o.cost, -o.accuracy) if objective["target_drop"] is not None else (-o.accuracy, o.cost) for o in outcomes)
    return with_ensemble if ensemble < alone else chosen


def _policy_record(chosen: Scored, result: Outcome, images: int, final: float, **fields: Any) -> Policy:
    """The manifest's record of the chosen policy and its outcome on `images` images (final exit alone: `final`%)."""
    return Policy(name=chosen.choice.policy, temperatures=chosen.temperatures, running_ensemble=chosen.choice.running_ensemble,
                  agreement=chosen.choice.agreement, final_ensemble=chosen.choice.final_ensemble,
                  gate=[[float(v) for v in w] for w in chosen.gate],
                  val_images=images, val_accuracy=round(result.accuracy, 3),
                  val_final_exit_accuracy=round(final, 3), val_mean_cost=round(result.cost, 4),
                  val_exit_counts=list(result.exit_counts), binomial_se=round(binomial_se(result.accuracy, images), 3),
                  drop_se=round(result.drop_se, 3), auroc=[None if np.isnan(a) else round(a, 4) for a in chosen.auroc],
                  **fields)


def _refusal(certified: Certified, chosen: Scored, search: np.ndarray, certify_images: int, target_drop: float,
             confidence: float, safest: np.ndarray, reference: np.ndarray, test: DropTest) -> BadInput:
    """Why nothing could be certified, and how many validation images would do it."""
    searched, _, p = certified.tested[0]
    drops = signed_drops(chosen.correct[:, search], assign_exits(chosen.scores[:, search], safest), reference[search])
    needed = images_needed(drops, target_drop, confidence, test=test)
    more = (f"about {2 * needed:,} validation images would (half to search, half to certify): carve more "
            f"(data.val_size in the recipe) or give --data a val/ folder" if needed else
            "its drop on the search half is at the target already: raise --target-drop")
    return BadInput(f"cannot certify a drop of at most {target_drop:g} points at confidence {confidence:g} on {certify_images} "
                    f"certify images: the safest point found on the search half (cost {searched.cost:.3f}) got p = {p:.3f} "
                    f"there, above {1 - confidence:.3g}; {more}")


def calibrate_bundle(bundle: str | Path, data: str | Path | None = None, *, target_drop: float | None = None, budget: float | None = None,
                     policy: str = "max_prob", temperature: bool = False, running_ensemble: bool = False, agreement: bool = False,
                     gate: bool = False, final_ensemble: bool = False, margin: float = 0.0, confidence: float | None = None, seed: int = 0,
                     certify_test: DropTest = "exact", precision: str | None = None,
                     log: Log = print) -> Policy:
    """Choose thresholds on validation images and write them (and the policy) into the bundle's manifest.
    `policy='auto'` tries every registered policy with and without per-exit temperatures, running ensemble and
    agreement (runtime.trail), and the learned gate (runtime.gate), and keeps the one whose scores best predict
    the drop event (AUROC). `gate=True` scores the early exits with the gate, fitted where the thresholds are
    searched. `final_ensemble=True` has the final exit answer with every exit's ensemble; `policy='auto'` tries it
    both ways and keeps the cheaper. The drop is measured against the final exit alone. With `confidence` (and
    `target_drop`), the search and
    the certification use the two halves of the validation images (`seed` draws them); a target that the
    certify half cannot support is refused, with the number of images that would do, and nothing is written.
    `certify_test` is the test of the drop on the certify half (runtime.drop_tests: exact or betting).
    `precision` (fp16, int8, ...) calibrates on those graphs' own scores and stores the result with them; the
    drop is then measured against that precision's own final exit (`edgekd bench` reports it against FP32 too)."""
    if policy != "auto":
        POLICIES.get(policy)  # an unknown name is refused before any image is read
    objective = "target_drop" if target_drop is not None else "budget"
    check_confidence(confidence, objective, target_drop, certify_test)  # a bad level or test is refused before any image is read
    if gate and policy == "auto":
        raise BadInput("--gate is one of the candidates --policy auto tries already; give one or the other")
    if gate and agreement:
        raise BadInput("the gate weighs agreement with the previous exit itself; drop --agreement")
    asked = Choice(policy, temperature, running_ensemble, agreement, gate, final_ensemble)
    model = EarlyExitModel(bundle, precision=precision)
    images, labels = load_split(model, data, "val")
    logits = exit_logits(model, images)
    costs = np.asarray(model.manifest.exit_costs())
    reference = logits[-1].argmax(1) == labels  # the final exit alone, the plain model: the drop is measured from it
    goal = {"target_drop": target_drop, "budget": budget, "margin": margin}
    if confidence is None:
        everything = np.arange(len(labels))
        chosen = _choose_policy(model, logits, labels, asked, everything, log)
        chosen = _choose_final_answer(chosen, logits, labels, reference, asked, everything, costs, goal, log)
        thresholds, result = calibrate(chosen.scores, chosen.correct, costs, reference=reference, **goal)
        record = _policy_record(chosen, result, len(labels), 100.0 * reference.mean(), objective=objective, target_drop=target_drop, budget=budget,
                                margin=margin)
        drop = record.val_final_exit_accuracy - result.accuracy
        summary = (f"on {len(labels)} validation images: accuracy {result.accuracy:.2f}% (final exit {record.val_final_exit_accuracy:.2f}%, "
                   f"±{record.binomial_se:.2f} binomial s.e.), mean cost {result.cost:.3f} of the model's FLOPs, exits taken "
                   f"{list(result.exit_counts)}; drop {drop:.2f} ± {result.drop_se:.2f} points (paired s.e.). These are the "
                   f"search's own images, so new data may do worse: --confidence P certifies the target on images the search "
                   f"never saw")
    else:
        search, certify = split_halves(labels, seed)
        chosen = _choose_policy(model, logits, labels, asked, search, log)
        chosen = _choose_final_answer(chosen, logits, labels, reference, asked, search, costs, goal, log)
        points = frontier(chosen.scores[:, search], chosen.correct[:, search], costs, target_drop, margin, reference[search])
        log(f"search half ({len(search)} images): {len(points)} points from cost {points[0][1].cost:.3f} to {points[-1][1].cost:.3f}")
        log(f"certify half ({len(certify)} images): the {certify_test} test at level {1 - confidence:.3g}, in order")
        certified = certify_in_sequence(points, chosen.scores[:, certify], chosen.correct[:, certify], costs, target_drop, confidence,
                                        reference=reference[certify], test=certify_test)
        certify_final = 100.0 * reference[certify].mean()
        for i, (searched, measured, p) in enumerate(certified.tested, 1):
            passed = p <= 1.0 - confidence
            log(f"  point {i}: cost {searched.cost:.3f} on the search half, {measured.cost:.3f} on the certify half, "
                f"drop {certify_final - measured.accuracy:.2f} there, p = {p:.4f}: "
                f"{'certified' if passed else 'not certified, stop'}")
        if certified.thresholds is None:
            raise _refusal(certified, chosen, search, len(certify), target_drop, confidence, points[0][0], reference, certify_test)
        thresholds, result = certified.thresholds, certified.certify
        record = _policy_record(chosen, result, len(certify), certify_final, objective=objective,
                                target_drop=target_drop, margin=margin, confidence=confidence, search_images=len(search),
                                certify_images=len(certify), certify_p_value=round(certified.p_value, 6), certify_test=certify_test,
                                points_tested=len(certified.tested))
        drop = record.val_final_exit_accuracy - result.accuracy
        summary = (f"certified: drop at most {target_drop:g} points with probability at least {confidence:g} on new data from the "
                   f"same distribution. On the {len(certify)} certify images: accuracy {result.accuracy:.2f}% (final exit "
                   f"{record.val_final_exit_accuracy:.2f}%), drop {drop:.2f} points, mean cost {result.cost:.3f} of the model's "
                   f"FLOPs, exits taken {list(result.exit_counts)}")
    manifest = read_manifest(bundle)
    chosen_thresholds = [float(t) for t in thresholds]
    if model.precision in manifest.precisions:
        manifest.precisions[model.precision].policy, manifest.precisions[model.precision].thresholds = record, chosen_thresholds
    else:
        manifest.policy, manifest.thresholds = record, chosen_thresholds
    write_manifest(Path(bundle), manifest)
    log(f"{chosen.choice.description}{'' if model.precision == FP32 else f' ({model.precision} graphs)'}: thresholds "
        f"{', '.join(f'{t:.4f}' for t in thresholds)} {summary}")
    return record
