"""CPU latency of the row-gathering device chain (what CUDA and TensorRT run, here on host OrtValues)
against today's CPU chains, on the same images and the same keep masks.

Each pass runs every segment and compacts after every early exit with a seeded random mask (about
half the rows go on; at batch 1 the one row goes on), so the gather and the bookkeeping are timed with
the segments. Chains: `runtime` (what the CPU backend picks for the batch: blocked hand-off where it
pays), `nchw` (bound NCHW buffers, compaction by numpy into the next buffer), `rows` (the device chain:
OrtValues handed on, the row-gathering segments compact). Medians of `--repeats` passes, in turns.
Before timing, each batch's logits are compared: `rows` against `nchw` (the same kernels: must be
identical) and against `runtime` (another layout: rounding only), as the largest absolute difference.

    python benchmarks/row_gather_chain.py export/oto_resnet18-quick [--batches 1 7 64] [--repeats 200]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.timing import medians_in_turns


def masks_for(rng: np.random.Generator, rows: int, exits: int) -> list[np.ndarray]:
    """A keep mask after each early exit, about half the rows kept, never none."""
    masks = []
    for _ in range(exits - 1):
        keep = rng.random(rows) < 0.5
        keep[0] = True
        masks.append(keep)
        rows = int(keep.sum())
    return masks


def logits_of(chain, images: np.ndarray, masks: list[np.ndarray]) -> list[np.ndarray]:
    step = chain.start(images)
    logits = [step.logits.copy()]
    for keep in masks:
        step.advance(keep)
        logits.append(step.logits.copy())
    return logits


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def one_pass(chain, images: np.ndarray, masks: list[np.ndarray]):
    def run() -> None:
        step = chain.start(images)
        for keep in masks:
            step.advance(keep)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 7, 64])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--precision", default=None)
    args = parser.parse_args()
    model = EarlyExitModel(args.bundle, precision=args.precision, shared_threads=True)
    print(f"{args.bundle} ({model.precision}), medians of {args.repeats} passes with compaction after every exit")
    print(f"{'batch':>5}  {'runtime ms':>10}  {'nchw ms':>8}  {'rows ms':>8}  {'rows/runtime':>12}  {'rows/nchw':>9}  "
          f"{'|rows-nchw|':>11}  {'|rows-runtime|':>14}")
    rng = np.random.default_rng(0)
    for batch in args.batches:
        images = rng.standard_normal((batch, *model.manifest.input.shape)).astype(np.float32)
        masks = masks_for(rng, batch, model.num_exits)
        chains = (model.chain_for(batch), model.chain, model.backend.device_chain("cpu"))
        runtime_logits, nchw_logits, rows_logits = (logits_of(c, images, masks) for c in chains)
        to_nchw, to_runtime = max_diff(rows_logits, nchw_logits), max_diff(rows_logits, runtime_logits)
        runtime, nchw, rows = (1e3 * t for t in medians_in_turns([one_pass(c, images, masks) for c in chains],
                                                                   args.repeats, warmup=10))
        print(f"{batch:>5}  {runtime:10.3f}  {nchw:8.3f}  {rows:8.3f}  {rows / runtime:12.3f}  {rows / nchw:9.3f}  "
              f"{to_nchw:11.3g}  {to_runtime:14.3g}")


if __name__ == "__main__":
    main()
