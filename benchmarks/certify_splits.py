"""How often a certified drop is exceeded on test: `edgekd calibrate --confidence` over many random
search/certify splits of the validation images, each certified point then measured on the test split.

With confidence c, the promise P(drop <= target) >= c means that over many splits at most a share
1 - c of the certified points may exceed the target on new data. The test split is a sample too: each
split's test drop comes with its paired s.e., and a point whose true drop sits just under the target
exceeds it on test about half the time. All splits share one test split, so their excesses are not
independent either.
Each split is a fresh `calibrate_bundle(seed=s)` on a copy of the bundle (restored before every split);
refusals are counted too.

    python benchmarks/certify_splits.py export/self_kd_resnet18_cifar10 --data ../shared/data/cifar10 \
        --target-drop 1.0 --confidence 0.9 --splits 20 [--policy auto] [--final-ensemble] [--certify-test betting]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import get_args

import numpy as np

from edgekd.bundle.manifest import DropTest
from edgekd.errors import BadInput
from edgekd.runtime.calibration import calibrate_bundle
from edgekd.runtime.certify import check_confidence
from edgekd.runtime.evaluation import exit_logits, load_split, score_exits
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.thresholds import outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder root: validation from the run's split, test/ measured")
    parser.add_argument("--target-drop", type=float, default=1.0)
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--policy", default="auto")
    parser.add_argument("--certify-test", default="exact", choices=list(get_args(DropTest)), help="the test on the certify half")
    parser.add_argument("--final-ensemble", action="store_true", help="the final exit answers with every exit's ensemble")
    args = parser.parse_args()
    try:
        check_confidence(args.confidence, target_drop=args.target_drop, test=args.certify_test)
    except BadInput as problem:
        parser.error(str(problem))
    reference = EarlyExitModel(args.bundle)
    test_images, test_labels = load_split(reference, args.data, "test")
    test_logits = exit_logits(reference, test_images)
    costs = np.asarray(reference.manifest.exit_costs())
    certified, refused = [], 0
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "bundle"
        for seed in range(args.splits):
            shutil.copytree(args.bundle, copy, dirs_exist_ok=True)  # the original manifest back, without the last split's thresholds
            try:
                policy = calibrate_bundle(copy, args.data, target_drop=args.target_drop, policy=args.policy,
                                          final_ensemble=args.final_ensemble, confidence=args.confidence, seed=seed,
                                          certify_test=args.certify_test,
                                          log=lambda message: None)
            except BadInput as refusal:
                refused += 1
                print(f"split {seed:2d}: refused ({str(refusal)[:120]}...)")
                continue
            model = EarlyExitModel(copy)
            scored = score_exits(model, test_logits, test_labels)
            final_alone = scored.exit_correct[-1]  # the plain model
            result = outcome(scored.scores, scored.correct, costs, np.asarray(model.thresholds), final_alone)
            drop = 100.0 * final_alone.mean() - result.accuracy
            certified.append((drop, result.cost))
            print(f"split {seed:2d}: {policy.name} certified on {policy.certify_images} images (p = {policy.certify_p_value:.4f}); "
                  f"test drop {drop:+.2f} ± {result.drop_se:.2f} points (paired s.e.) at cost {result.cost:.3f}{'  EXCEEDED' if drop > args.target_drop else ''}")
    exceeded = sum(drop > args.target_drop for drop, _ in certified)
    print(f"\n{args.splits} splits, target drop {args.target_drop:g} at confidence {args.confidence:g}: {len(certified)} certified, "
          f"{refused} refused; exceeded on test in {exceeded} of {len(certified)} "
          f"(allowed share {1 - args.confidence:.2f})")
    if certified:
        drops, cost = [d for d, _ in certified], [c for _, c in certified]
        print(f"test drop median {statistics.median(drops):+.2f} (min {min(drops):+.2f}, max {max(drops):+.2f}); "
              f"cost median {statistics.median(cost):.3f} (min {min(cost):.3f}, max {max(cost):.3f})")


if __name__ == "__main__":
    main()
