"""Where a batch-1 early-exit call's time goes: onnxruntime's segment runs, edgekd's Python around them,
and the early exit heads, against the monolithic `full` graph.

A sample that runs to the last exit pays for every segment (trunk k plus head k) and for the Python
step between segments (scores, threshold check, bookkeeping). This times, in turns so slow spells of
the machine fall on all alike (the median of `--repeats` calls each, on one shared thread pool as
`edgekd bench` runs):
- `full`: the monolithic graph's session.run (every exit's logits);
- `prefix_K`: image -> the last exit's logits only, so `full - prefix_K` is what the early heads cost;
- `predict`: `EarlyExitModel.predict` with thresholds no sample reaches, so it runs every segment;
  the segment runs inside it are summed from its own timings, and the rest is Python.

    python benchmarks/exit_overhead.py export/oto_resnet18-quick [--repeats 400] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from edgekd.bundle import names
from edgekd.bundle.files import load_calibration_sample
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.thresholds import NEVER
from edgekd.runtime.timing import times_in_turns


def measure(model: EarlyExitModel, image: np.ndarray, repeats: int) -> dict[str, float]:
    """Median microseconds of each part of one batch-1 call, timed in turns."""
    full, last = model.session(names.FULL), model.session(names.prefix(model.num_exits))
    never = [NEVER] * (model.num_exits - 1)  # no sample leaves early
    in_sessions: list[float] = []

    def predict() -> None:
        timings = model.predict(image, thresholds=never).timings
        in_sessions.append(timings["total"])

    times = times_in_turns([lambda: full.run(None, {names.IMAGE: image}),
                            lambda: last.run(None, {names.IMAGE: image}), predict], repeats)
    full_s, last_s, predict_s = (statistics.median(t) for t in times)
    sessions_s = statistics.median(in_sessions)
    return {"full": full_s * 1e6, "prefix_last": last_s * 1e6, "heads": (full_s - last_s) * 1e6,
            "predict": predict_s * 1e6, "segments": sessions_s * 1e6, "python": (predict_s - sessions_s) * 1e6}


def row(label: str, r: dict[str, float], exits: int) -> str:
    return (f"{label} | {r['full']:.0f} us | {r['prefix_last']:.0f} us | {r['heads']:.0f} us ({r['heads'] / r['full']:.1%}) | "
            f"{r['predict']:.0f} us | {r['segments']:.0f} us | {r['python']:.0f} us | {r['python'] / exits:.1f} us | "
            f"{r['predict'] / r['full']:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3, help="independent measurements, each printed, then their median")
    args = parser.parse_args()
    model = EarlyExitModel(args.bundle, shared_threads=True)
    if model.manifest.calibration_sample is not None:  # a real image where the bundle stores some
        image = model.manifest.preprocess.normalize(load_calibration_sample(args.bundle, model.manifest)[:1])
    else:
        image = np.random.default_rng(0).standard_normal((1, *model.manifest.input.shape)).astype(np.float32)
    rows = [measure(model, image, args.repeats) for _ in range(args.rounds)]
    exits = model.num_exits
    print(f"{args.bundle.name}: batch 1, {exits} exits, median of {args.repeats} calls per round, all exits run")
    print("round | full | prefix_last | early heads (full - prefix_last) | predict | its segment runs | its Python | Python per exit | predict / full")
    for i, r in enumerate(rows, 1):
        print(row(str(i), r, exits))
    print(row("median", {key: statistics.median(r[key] for r in rows) for key in rows[0]}, exits))


if __name__ == "__main__":
    main()
