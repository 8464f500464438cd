"""Latency of an exported bundle on CPU onnxruntime: chained segments vs the monolithic `full` graph,
and every reduced-precision graph set (FP16, INT8 symmetric or U8S8) vs FP32, side by side (latency,
and with `--run` per-exit accuracy on the run's test split). `--also` adds the graph sets of other
bundles exported from the same run (an `onnx-int8 --int8-scheme u8s8` bundle beside a symmetric one).

Every figure is the median of `--repeats` timed runs after warm-up, all exits computed; the graphs
compared are timed in turns, so the machine's slow spells fall on all of them alike. Chained
segments run as one session per segment, with three kinds of thread pool, each measured in a process
of its own and the same for `full`: per-session pools with onnxruntime's default spinning (plain
sessions, as onnxruntime makes them: idle pools spin and fight over the cores), per-session pools
that spin only while a run lasts (`EarlyExitModel`'s default), and one pool shared by every session
of the process (what edgekd's commands use). On the shared pool the runtime's chain runs
the ways `--chains` names: feature maps handed on by plain `session.run` (copied out of onnxruntime
and back in, `plain`); through buffers the next segment reads (`nchw`, `edgekd.runtime.chain`); and
through those buffers in onnxruntime's blocked layout, without the NCHW conversions at every boundary
(`edgekd.runtime.layout`), in its two variants: the last convolution's in-place sum copied out by
onnxruntime on one thread (`serial`) or by a ReLU on every thread (`parallel`, the runtime's choice
once a batch's feature maps reach `PARALLEL_COPY_BYTES`). `runtime` is whichever the runtime picks
for the batch.

    python benchmarks/export_latency.py export/oto_resnet18-quick [--run runs/oto_resnet18-quick] [--repeats 50]
    python benchmarks/export_latency.py export/oto_resnet18-quick --pool shared --chains runtime --repeats 400
    python benchmarks/export_latency.py export/b-sym --also export/b-u8s8 --pool precisions --run runs/b
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgekd.bundle import Manifest, names, read_manifest
from edgekd.runtime.backends.onnxruntime_cpu import PARALLEL_COPY_BYTES
from edgekd.runtime.chain import ChainedSession, SegmentChain
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.timing import medians_in_turns
from edgekd.runtime.sessions import shared_pool


def session(path: Path, threads: int) -> ort.InferenceSession:
    """A plain session, with onnxruntime's default (spinning) thread pool of its own."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_ms(*fns, repeats: int, block: int = 1) -> list[float]:
    """Median milliseconds of each function, timed in turns (`block` calls a turn) after 5 warm-up calls each."""
    return [1e3 * t for t in medians_in_turns(fns, max(1, repeats // block), warmup=5, block=block)]


def chained(bundle: Path, manifest: Manifest, threads: int):
    """Plain segment sessions, each with a spinning thread pool of its own, feature maps handed on by `session.run`."""
    paths = [manifest.graph_path(bundle, s) for s in names.segments(manifest.num_exits)]
    chain = ChainedSession(SegmentChain.for_bundle([session(p, threads) for p in paths], manifest, bind=False))
    return lambda x: chain.run(None, {names.IMAGE: x})


POOLS = ("spinning", "per-session", "shared")
CHAINS = {"plain": "plain run, NCHW", "nchw": "bound, NCHW", "serial": "blocked, 1-thread copy",
          "parallel": "blocked, parallel copy", "runtime": "runtime's choice"}


def runtime_chained(bundle: Path, threads: int, variant: str, batch: int, shared: bool = True):
    """The runtime's segment sessions on the shared pool (or, `shared=False`, on pools of their own that
    spin only while a run lasts), feature maps handed on as `variant` (a key of CHAINS)."""
    model = EarlyExitModel(bundle, threads=threads, shared_threads=shared)
    if variant in ("serial", "parallel"):
        chain = model.backend.blocked_chain(parallel_copy=variant == "parallel")
    else:
        chain = model.chain_for(batch) if variant == "runtime" else model.chain
    chained_session = ChainedSession(SegmentChain.for_bundle(chain.segments, model.manifest, bind=variant != "plain"))
    return lambda x: chained_session.run(None, {names.IMAGE: x})


def plain_full(bundle: Path, threads: int):
    s = session(read_manifest(bundle).graph_path(bundle, names.FULL), threads)
    return lambda x: s.run(None, {names.IMAGE: x})


def runtime_full(bundle: Path, precision: str, threads: int, shared: bool = True):
    """The `full` graph of `precision` in a session as the runtime makes it: on the shared thread pool,
    or (`shared=False`) on a pool of its own that spins only while a run lasts."""
    model = EarlyExitModel(bundle, precision=precision, threads=threads, shared_threads=shared, verify=False)
    s = model.session(names.FULL)
    return lambda x: s.run(None, {names.IMAGE: x})


def accuracy(run, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> list[float]:
    hits = None
    for start in range(0, len(images), batch):
        logits = run(images[start:start + batch])
        probs = [np.exp(z - z.max(1, keepdims=True)) for z in logits]
        probs = [p / p.sum(1, keepdims=True) for p in probs]
        row = np.array([(p.argmax(1) == labels[start:start + batch]).sum() for p in [*probs, np.mean(probs, 0)]])
        hits = row if hits is None else hits + row
    return (100.0 * hits / len(images)).round(2).tolist()


def test_split(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    import torch
    import yaml

    from edgekd.config import RecipeConfig
    from edgekd.data import build_data

    config = RecipeConfig.model_validate(yaml.safe_load((run_dir / "config.yaml").read_text()))
    data = build_data(config.data)
    images, labels = zip(*(data.test[i] for i in range(len(data.test))))
    return torch.stack(list(images)).numpy(), np.asarray(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--run", type=Path, help="the run the bundle came from: its test split gives INT8 vs FP32 accuracy")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--block", type=int, default=1,
                        help="calls of one graph in a row per turn: 1 alternates call by call (each call finds the caches "
                             "holding the other graphs' weights); 20 or so measures the warm, steady state of a deployed model")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64], help="batch sizes of the chained-vs-full comparison")
    parser.add_argument("--pool", choices=["all", *POOLS, "precisions"], default="all",
                        help="thread pools of the chained-vs-full comparison (each measured in its own process); "
                             "'precisions' measures only the graph sets against FP32")
    parser.add_argument("--also", type=Path, nargs="*", default=[],
                        help="bundles of the same run whose reduced-precision graph sets join the comparison")
    parser.add_argument("--chains", nargs="+", choices=list(CHAINS), default=["plain", "nchw", "serial", "parallel"],
                        help="how the chain on the shared pool hands feature maps on (timed in turns with full)")
    args = parser.parse_args()
    manifest = read_manifest(args.bundle)
    size = manifest.input.shape
    rng = np.random.default_rng(0)
    if args.pool == "precisions":
        return compare_precisions(args, rng)
    if args.pool != "all":
        print(f"{args.bundle}: {manifest.num_exits} exits, input {size}, {args.threads} threads, median of {args.repeats}; "
              f"{args.pool} thread pool(s); {args.block} call(s) of a graph per turn")
    if args.pool == "all":  # onnxruntime allows one kind of pool per process: measure each in its own
        for pool in POOLS:
            subprocess.run([sys.executable, __file__, str(args.bundle), "--repeats", str(args.repeats), "--threads",
                            str(args.threads), "--pool", pool, "--block", str(args.block), "--batches",
                            *map(str, args.batches), "--chains", *args.chains], check=True)
    elif args.pool in ("spinning", "per-session"):
        plain = args.pool == "spinning"
        print(f"{'batch':>5} {'full ms':>8} {'chained, ' + ('plain sessions' if plain else 'EarlyExitModel'):>24} {'ratio':>6}")
        for batch in args.batches:
            x = rng.standard_normal((batch, *size)).astype(np.float32)
            full_run = plain_full(args.bundle, args.threads) if plain else runtime_full(args.bundle, "fp32", args.threads, shared=False)
            chain = chained(args.bundle, manifest, args.threads) if plain else runtime_chained(args.bundle, args.threads, "runtime", batch, shared=False)
            t_full, t_chain = median_ms(lambda: full_run(x), lambda: chain(x), repeats=args.repeats, block=args.block)
            print(f"{batch:>5} {t_full:>8.3f} {t_chain:>24.3f} {t_chain / t_full:>6.3f}")
    else:
        pooled = shared_pool(args.threads)  # before any session: one pool for the whole process, as edgekd's commands run
        probed = EarlyExitModel(args.bundle, threads=args.threads, shared_threads=True)
        on = lambda chain: "on" if chain is not probed.chain else "off (NCHW segments)"  # noqa: E731
        print(f"probes, onnxruntime {ort.__version__}: shared thread pool {'on' if pooled else 'off (pools of their own)'}; "
              f"blocked hand-off {on(probed.backend.blocked_chain(parallel_copy=False))}, "
              f"with the parallel copy {on(probed.backend.blocked_chain(parallel_copy=True))}")
        print(f"{'batch':>5} {'full ms':>8} " + " ".join(f"{'chained, ' + CHAINS[c]:>32} {'ratio':>6}" for c in args.chains))
        for batch in args.batches:
            x = rng.standard_normal((batch, *size)).astype(np.float32)
            monolithic = runtime_full(args.bundle, "fp32", args.threads)
            chains = [runtime_chained(args.bundle, args.threads, c, batch) for c in args.chains]
            t_full, *t_chains = median_ms(lambda: monolithic(x), *[lambda c=c: c(x) for c in chains],
                                          repeats=args.repeats, block=args.block)
            print(f"{batch:>5} {t_full:>8.3f} " + " ".join(f"{t:>32.3f} {t / t_full:>6.3f}" for t in t_chains))
        print(f"(the runtime copies on every thread once a batch's largest feature map reaches {PARALLEL_COPY_BYTES // 1024} KiB)")
    if args.pool == "all" and (manifest.precisions or args.also):
        subprocess.run([sys.executable, __file__, str(args.bundle), "--repeats", str(args.repeats), "--threads", str(args.threads),
                        "--pool", "precisions", "--block", str(args.block), "--also", *map(str, args.also),
                        *(["--run", str(args.run)] if args.run else [])], check=True)


def compare_precisions(args: argparse.Namespace, rng: np.random.Generator) -> None:
    """Every reduced-precision graph set of the bundles against the first bundle's FP32 `full` graph, timed in
    turns on the shared thread pool; with `--run`, per-exit test accuracy too."""
    shared_pool(args.threads)  # as edgekd's commands run: sessions taking turns, no idle pool spinning against the others
    sets = [("fp32", args.bundle, "fp32")]
    for bundle in [args.bundle, *args.also]:
        for precision, graph_set in read_manifest(bundle, verify=False).precisions.items():
            sets.append((f"{precision} ({bundle.name})", bundle, precision))
            print(f"{precision} ({bundle.name}): {graph_set.method}")
    runs = [runtime_full(bundle, precision, args.threads) for _, bundle, precision in sets]
    size = read_manifest(args.bundle, verify=False).input.shape
    print(f"\nfull graph, median ms of {args.repeats} (ratio to FP32)")
    print(f"{'batch':>5} " + " ".join(f"{label:>32}" for label, _, _ in sets))
    for batch in args.batches:
        x = rng.standard_normal((batch, *size)).astype(np.float32)
        times = median_ms(*[lambda r=r: r(x) for r in runs], repeats=args.repeats, block=args.block)
        print(f"{batch:>5} " + " ".join(f"{t:>22.3f} ({t / times[0]:.3f}x)" for t in times))
    if args.run:
        images, labels = test_split(args.run)
        reference = accuracy(runs[0], images, labels)
        print(f"\ntest top-1 on {len(images)} images, exits 1..K and the ensemble")
        print(f"{'fp32':>32}: " + " ".join(f"{a:6.2f}" for a in reference))
        for (label, _, _), run in zip(sets[1:], runs[1:]):
            acc = accuracy(run, images, labels)
            print(f"{label:>32}: " + " ".join(f"{b:6.2f} ({b - a:+.2f})" for a, b in zip(reference, acc)))


if __name__ == "__main__":
    main()
