"""Python time per early exit of each way to score it, at batch 1 (the early-exit loop's own cost, no graph).

    python benchmarks/policy_overhead.py [--classes 10] [--repeats 5]

Walks 3 early exits with ExitTrail on random logits and prints, per option, the median over `--repeats`
runs of the best-of-5 mean time per exit.
"""
from __future__ import annotations

import argparse
import statistics
import timeit

import numpy as np

from edgekd.runtime.gate import GATE_FEATURES
from edgekd.runtime.policies import POLICIES
from edgekd.runtime.trail import ExitTrail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    logits = [rng.normal(size=(1, args.classes)).astype(np.float32) for _ in range(4)]
    gate = [rng.normal(size=len(GATE_FEATURES) + 1) for _ in range(3)]
    options = {
        "margin": {},
        "margin, running ensemble, agreement": {"running_ensemble": True, "agreement": True},
        "learned gate": {"gate": gate},
        "learned gate on the running ensemble": {"gate": gate, "running_ensemble": True},
    }
    for label, kwargs in options.items():
        def walk() -> None:
            trail = ExitTrail(POLICIES.get("margin"), [1.5] * 4, **kwargs)
            for k in range(3):
                trail.step(logits[k], k)
        runs = [min(timeit.repeat(walk, number=2000, repeat=5)) / 2000 / 3 * 1e6 for _ in range(args.repeats)]
        print(f"{label:40s} {statistics.median(runs):6.1f} us per early exit (runs {min(runs):.1f}-{max(runs):.1f})")


if __name__ == "__main__":
    main()
