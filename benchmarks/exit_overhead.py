"""Where a batch-1 early-exit call's time goes: onnxruntime's segment runs, edgekd's Python around them,
and the early exit heads, against the monolithic `full` graph.

A sample that runs to the last exit pays for every segment (trunk k plus head k) and for the Python
step between segments (scores, threshold check, bookkeeping). This times, in turns so slow spells of
the machine fall on all alike (the median of `--repeats` calls each, on one shared thread pool as
`edgekd bench` runs):
- `full`: the monolithic graph's session.run (every exit's logits);
- `prefix_K`: image -> the last exit's logits only, so `full - prefix_K` is what the early heads cost;
- `one call`: `EarlyExitModel.predict` with thresholds no sample reaches, so it runs every segment,
  as a single image does by default: one call of the joined graph (`edgekd.runtime.single_call`);
- `chain`: the same through the segment chain (`single_call=False`), one session call per segment;
  the segment runs inside it are summed from its own timings, and the rest is Python.

    python benchmarks/exit_overhead.py export/oto_resnet18-quick [--repeats 400] [--rounds 3] [--pool own] [--precision int8]
                                       [--final-ensemble]
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


def measure(model: EarlyExitModel, chained: EarlyExitModel, image: np.ndarray, repeats: int) -> dict[str, float]:
    """Median microseconds of each part of one batch-1 call, timed in turns."""
    full, last = model.session(names.FULL), model.session(names.prefix(model.num_exits))
    never = [NEVER] * (model.num_exits - 1)  # no sample leaves early
    in_sessions: list[float] = []

    def through_chain() -> None:
        timings = chained.predict(image, thresholds=never).timings
        in_sessions.append(timings["total"])

    times = times_in_turns([lambda: full.run(None, {names.IMAGE: image}), lambda: last.run(None, {names.IMAGE: image}),
                            lambda: model.predict(image, thresholds=never), through_chain], repeats)
    full_s, last_s, one_call_s, chain_s = (statistics.median(t) for t in times)
    sessions_s = statistics.median(in_sessions)
    return {"full": full_s * 1e6, "prefix_last": last_s * 1e6, "heads": (full_s - last_s) * 1e6, "one_call": one_call_s * 1e6,
            "chain": chain_s * 1e6, "segments": sessions_s * 1e6, "python": (chain_s - sessions_s) * 1e6}


def row(label: str, r: dict[str, float], exits: int) -> str:
    return (f"{label} | {r['full']:.0f} us | {r['prefix_last']:.0f} us | {r['heads']:.0f} us ({r['heads'] / r['full']:.1%}) | "
            f"{r['one_call']:.0f} us | {r['chain']:.0f} us | {r['segments']:.0f} us | {r['python']:.0f} us | "
            f"{r['python'] / exits:.1f} us | {r['one_call'] / r['full']:.3f}x | {r['chain'] / r['full']:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3, help="independent measurements, each printed, then their median")
    parser.add_argument("--pool", choices=["shared", "own"], default="shared",
                        help="one thread pool for every session, as edgekd's commands run, or a pool per session, "
                             "the Python API's default")
    parser.add_argument("--precision", help="the bundle's graph set to time (default fp32)")
    parser.add_argument("--final-ensemble", action="store_true", help="the final exit answers with every exit's ensemble")
    args = parser.parse_args()
    shared = args.pool == "shared"
    model = EarlyExitModel(args.bundle, shared_threads=shared, precision=args.precision)
    chained = EarlyExitModel(args.bundle, shared_threads=shared, precision=args.precision, single_call=False)
    model.final_ensemble = chained.final_ensemble = args.final_ensemble
    if model.manifest.calibration_sample is not None:  # a real image where the bundle stores some
        image = model.manifest.preprocess.normalize(load_calibration_sample(args.bundle, model.manifest)[:1])
    else:
        image = np.random.default_rng(0).standard_normal((1, *model.manifest.input.shape)).astype(np.float32)
    if model.single_call_for("max_prob") is None:
        raise SystemExit(f"{args.bundle}: the segments could not be joined into one graph; "
                         "run with the edgekd.runtime logger at DEBUG to see why")
    rows = [measure(model, chained, image, args.repeats) for _ in range(args.rounds)]
    exits = model.num_exits
    print(f"{args.bundle.name} ({model.precision}{', final exit: the ensemble' if args.final_ensemble else ''}): batch 1, "
          f"{exits} exits, median of {args.repeats} calls per round, all exits run, "
          f"{'one thread pool for all sessions' if shared else 'a thread pool per session'}")
    print("round | full | prefix_last | early heads (full - prefix_last) | predict, one call | predict, chain | "
          "chain's segment runs | chain's Python | Python per exit | one call / full | chain / full")
    for i, r in enumerate(rows, 1):
        print(row(str(i), r, exits))
    print(row("median", {key: statistics.median(r[key] for r in rows) for key in rows[0]}, exits))


if __name__ == "__main__":
    main()
