"""Latency of an exported bundle on CPU onnxruntime: chained segments vs the monolithic `full` graph,
and INT8 vs FP32 (latency and per-exit accuracy on the run's test split).

Every figure is the median of `--repeats` timed runs after warm-up, all exits computed. Chained
segments run as one session per segment; `--spinning` compares onnxruntime's default (idle
intra-op threads spin, and several sessions' spinning pools fight over the cores) with spinning
off for the chained sessions, which is what the runtime uses.

    python benchmarks/export_latency.py export/oto_resnet18-quick [--run runs/oto_resnet18-quick] [--repeats 50]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgekd.export.bundle import read_manifest
from edgekd.runtime.bench import median_seconds


def session(path: Path, threads: int, spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_ms(fn, repeats: int) -> float:
    return 1e3 * median_seconds(fn, repeats, warmup=5)


def chained(bundle: Path, manifest: dict, prefix: str, threads: int, spinning: bool):
    sessions = [session(bundle / prefix / manifest["graphs"][f"segment_{k}"]["file"], threads, spinning)
                for k in range(1, len(manifest["exits"]) + 1)]
    names = [s.get_inputs()[0].name for s in sessions]

    def run(x: np.ndarray) -> list[np.ndarray]:
        logits = []
        for s, name in zip(sessions, names):
            x, z = s.run(None, {name: x})
            logits.append(z)
        return logits
    return run


def full(bundle: Path, prefix: str, threads: int, spinning: bool):
    s = session(bundle / prefix / "full.onnx", threads, spinning)
    return lambda x: s.run(None, {"image": x})


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
    args = parser.parse_args()
    manifest = read_manifest(args.bundle)
    size = manifest["input"]["shape"]
    rng = np.random.default_rng(0)
    print(f"{args.bundle}: {len(manifest['exits'])} exits, input {size}, {args.threads} threads, median of {args.repeats}")
    print(f"{'batch':>5} {'full ms':>9} {'chained ms (spin)':>18} {'ratio':>6} {'chained ms (no spin)':>21} {'ratio':>6}")
    for batch in (1, 64):
        x = rng.standard_normal((batch, *size)).astype(np.float32)
        full_run = full(args.bundle, "", args.threads, True)
        t_full = median_ms(lambda: full_run(x), args.repeats)
        spin = chained(args.bundle, manifest, "", args.threads, True)
        t_spin = median_ms(lambda: spin(x), args.repeats)
        calm = chained(args.bundle, manifest, "", args.threads, False)
        t_calm = median_ms(lambda: calm(x), args.repeats)
        print(f"{batch:>5} {t_full:>9.3f} {t_spin:>18.3f} {t_spin / t_full:>6.3f} {t_calm:>21.3f} {t_calm / t_full:>6.3f}")
    if "int8" not in manifest:
        return
    print(f"\nINT8 vs FP32, full graph ({manifest['int8']['quantization']})")
    print(f"{'batch':>5} {'FP32 ms':>9} {'INT8 ms':>9} {'INT8/FP32':>10}")
    fp32, int8 = full(args.bundle, "", args.threads, True), full(args.bundle, manifest["int8"]["dir"], args.threads, True)
    for batch in (1, 64):
        x = rng.standard_normal((batch, *size)).astype(np.float32)
        a, b = median_ms(lambda: fp32(x), args.repeats), median_ms(lambda: int8(x), args.repeats)
        print(f"{batch:>5} {a:>9.3f} {b:>9.3f} {b / a:>10.3f}")
    if args.run:
        images, labels = test_split(args.run)
        acc32, acc8 = accuracy(fp32, images, labels), accuracy(int8, images, labels)
        print(f"\ntest top-1 on {len(images)} images: " + "  ".join(
            f"{'exit ' + str(k + 1) if k < len(acc32) - 1 else 'ensemble'} FP32 {a:.2f} INT8 {b:.2f} ({b - a:+.2f})"
            for k, (a, b) in enumerate(zip(acc32, acc8))))


if __name__ == "__main__":
    main()
