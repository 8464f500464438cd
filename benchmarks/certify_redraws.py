"""How often a certified drop is exceeded on independent test sets: the validation and test images are
pooled, and each draw deals them out afresh into a validation set of the run's size and a test set of
the rest, certifies on the validation set as `edgekd calibrate --confidence` does (search half,
certify half, fixed-sequence testing) and measures the kept point on that draw's test set.

`certify_splits.py` redraws only the search/certify split, so all its splits share one test split and
its excesses move together. Here every draw has its own test set, so the share of draws whose test
drop exceeds the target estimates how often the promise is broken, plus the test sets' own noise (a
point whose true drop sits just under the target exceeds it on test about half the time). This is a
measurement of the promise only: calibration itself never reads test images. It also counts the draws
whose test drop is above the target by more than z paired s.e. (z the normal quantile at the
confidence): those the draw's own test set, taken alone, would call a broken promise at that level.

Scores use the bundle's own temperatures and look-back options, and its final answer (the final exit
alone, or the ensemble where `calibrate --final-ensemble` stored it): none of them on a bundle fresh
from `edgekd export`. The header line says which final answer was measured.

    python benchmarks/certify_redraws.py export/self_kd_resnet18_cifar10 --data ../shared/data/cifar10 \
        --target-drop 0.5 --confidence 0.9 --draws 40 [--policy margin] [--certify-test betting]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import get_args

import numpy as np
from tqdm import tqdm

from edgekd.bundle.manifest import DropTest
from edgekd.errors import BadInput
from edgekd.runtime.certify import certify_in_sequence, check_confidence, frontier, split_halves
from edgekd.runtime.evaluation import exit_logits, load_split, score_exits
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.policies import POLICIES
from edgekd.runtime.thresholds import outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder root: the run's validation split and test/ are pooled")
    parser.add_argument("--target-drop", type=float, default=0.5)
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--policy", default="margin", choices=sorted(POLICIES))
    parser.add_argument("--certify-test", default="exact", choices=list(get_args(DropTest)), help="the test on the certify half")
    args = parser.parse_args()
    try:
        check_confidence(args.confidence, target_drop=args.target_drop, test=args.certify_test)
    except BadInput as problem:
        parser.error(str(problem))
    model = EarlyExitModel(args.bundle)
    splits = [load_split(model, args.data, split) for split in ("val", "test")]
    val_size = len(splits[0][1])
    labels = np.concatenate([labels for _, labels in splits])
    logits = [np.concatenate(pair) for pair in zip(*(exit_logits(model, images) for images, _ in splits))]
    scored = score_exits(model, logits, labels, args.policy)
    scores, correct, reference = scored.scores, scored.correct, scored.exit_correct[-1]
    costs = np.asarray(model.manifest.exit_costs())
    answer = "every exit's ensemble" if model.final_ensemble else "the final exit alone"
    print(f"{len(labels)} images pooled; each draw: {val_size} validation (search and certify halves), "
          f"{len(labels) - val_size} test; final answer: {answer}, temperatures {model.temperatures}")
    drops, ses, cost, refused = [], [], [], 0
    for seed in tqdm(range(args.draws), desc="draws", unit="draw"):
        order = np.random.default_rng(seed).permutation(len(labels))
        val, test = order[:val_size], order[val_size:]
        search, certify = (val[half] for half in split_halves(labels[val], seed))
        points = frontier(scores[:, search], correct[:, search], costs, args.target_drop, reference=reference[search])
        certified = certify_in_sequence(points, scores[:, certify], correct[:, certify], costs, args.target_drop,
                                        args.confidence, reference=reference[certify], test=args.certify_test)
        if certified.thresholds is None:
            refused += 1
            continue
        result = outcome(scores[:, test], correct[:, test], costs, certified.thresholds, reference[test])
        drops.append(100.0 * reference[test].mean() - result.accuracy)
        ses.append(result.drop_se)
        cost.append(result.cost)
    exceeded = sum(drop > args.target_drop for drop in drops)
    z = statistics.NormalDist().inv_cdf(args.confidence)
    clearly = sum(drop > args.target_drop + z * se for drop, se in zip(drops, ses))
    print(f"{args.draws} draws, target drop {args.target_drop:g} at confidence {args.confidence:g}, {args.policy}: "
          f"{len(drops)} certified, {refused} refused; test drop above the target in {exceeded} of {len(drops)} "
          f"(allowed share {1 - args.confidence:.2f}, plus the test sets' noise); above it by more than "
          f"{z:.2f} paired s.e. in {clearly}")
    if drops:
        print(f"test drop median {statistics.median(drops):+.2f} (min {min(drops):+.2f}, max {max(drops):+.2f}; "
              f"paired s.e. median {statistics.median(ses):.2f}); cost median {statistics.median(cost):.3f} "
              f"(min {min(cost):.3f}, max {max(cost):.3f})")


if __name__ == "__main__":
    main()
