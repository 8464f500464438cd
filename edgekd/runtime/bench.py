"""`edgekd bench`: accuracy, latency and early-exit behaviour of a bundle on a test split.

Measures (CPU or the chosen provider; every latency is a median of repeated runs):
- per exit: test top-1 and batch-1 latency of its prefix graph; the plain model is the final exit's;
- the early-exit curve: a shared threshold swept over the score quantiles, with accuracy, mean FLOPs
  and mean latency (from the measured per-segment latencies) at each point;
- the calibrated thresholds (from `edgekd calibrate`): test accuracy, exit histogram, mean FLOPs,
  the measured mean batch-1 latency over the test images against the full model timed the same way
  (both through `predict`), and batched throughput with compaction against the full model;
- the oracle (each sample leaves at its earliest correct exit), the bound any policy stays under;
- hindsight: the thresholds the search picks on the test images themselves (or the calibrated ones,
  where it finds nothing cheaper), at the calibrated point's accuracy and at the calibrated target
  drop. Between hindsight and the oracle lies what the model and its scores cannot tell apart;
  between the calibrated point and hindsight, what choosing the thresholds on validation cost (the
  search's noise and the certificate's reserve);
- for a reduced precision (fp16, int8), the calibrated point against the FP32 full model as well:
  its test accuracy and its batch-1 latency, timed in the same turns (`vs_fp32_full`);
- what the early-exit loop moved between host and device per batch, at batch 1 and batched
  (`host_copies`: images, feature maps, kept-row indices, logits; all zero on CPU, and on CUDA or
  TensorRT no feature maps, because the device chain keeps them on the GPU).
Writes bench.json and, where matplotlib is installed, bench.png.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekd.bundle.manifest import FP32
from edgekd.runtime.evaluation import ExitScores, exit_logits, load_split, score_exits
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.timing import medians_in_turns, prefix_latencies, segment_latencies
from edgekd.runtime.thresholds import Outcome, assign_exits, hindsight, oracle, oracle_cost_at, outcome, shared_sweep


def run_bench(bundle: str | Path, data: str | Path, *, repeats: int = 50, batch: int = 64, backend: str = "cpu",
              precision: str | None = None, provider_options: dict[str, Any] | None = None, threads: int | None = None,
              limit: int | None = None, shared_threads: bool = True, passes: int = 3, single_call: bool = True) -> dict[str, Any]:
    """Measure the bundle on the test split of `data` (see the module's docstring); the report as a dict.
    `single_call=False` times single images through the segment chain, not the joined graph (`runtime.single_call`)."""
    model = EarlyExitModel(bundle, backend=backend, precision=precision, provider_options=provider_options, threads=threads,
                           shared_threads=shared_threads, single_call=single_call)
    images, labels = load_split(model, Path(data), "test")
    if limit:
        images, labels = images[:limit], labels[:limit]
    n, k_exits = len(labels), model.num_exits
    scored = score_exits(model, exit_logits(model, images), labels)
    scores, correct, ensemble = scored.scores, scored.correct, scored.ensemble
    costs = np.asarray(model.manifest.exit_costs())

    one = images[:1]
    prefix_latency = prefix_latencies(model, one, repeats)
    seg_latency = segment_latencies(model, one, repeats)
    path_latency = np.cumsum(seg_latency)
    full_latency = prefix_latency[-1]
    per_exit = [{"exit": k + 1, "test_top1": round(100.0 * scored.exit_correct[k].mean(), 3), "latency_ms": round(1e3 * prefix_latency[k], 4),
                 "flops_fraction": round(float(model.manifest.exits[k].flops / model.manifest.exits[-1].flops), 4)}
                for k in range(k_exits)]
    curve = []
    final_alone = scored.exit_correct[-1]  # the plain model, which every drop is measured from
    for t, result in shared_sweep(scores, correct, costs, count=41, reference=final_alone):
        exits = assign_exits(scores, np.full(k_exits - 1, t))
        curve.append({"threshold": round(t, 5), "accuracy": round(result.accuracy, 3), "flops_fraction": round(result.cost, 4),
                      "latency_ms": round(1e3 * float(path_latency[exits].mean()), 4), "exit_counts": list(result.exit_counts)})
    best_oracle = oracle(scored.exit_correct, costs)
    report: dict[str, Any] = {
        "bundle": str(bundle), "backend": backend, "precision": model.precision, "providers": [str(p) for p in model.providers], "test_images": n,
        "per_exit": per_exit, "ensemble_top1": round(100.0 * float((ensemble.argmax(1) == labels).mean()), 3),
        "ensemble_logit_top1": round(100.0 * float((scored.ensemble_logits.argmax(1) == labels).mean()), 3),
        "full_model": {"test_top1": per_exit[-1]["test_top1"], "latency_ms": round(1e3 * full_latency, 4)},
        "segment_latency_ms": [round(1e3 * s, 4) for s in seg_latency], "curve": curve,
        "oracle": {"accuracy": round(best_oracle.accuracy, 3), "flops_fraction": round(best_oracle.cost, 4),
                   "exit_counts": list(best_oracle.exit_counts)},
    }
    if model.thresholds:
        reference = None
        if model.precision != FP32:
            reference = EarlyExitModel(bundle, backend=backend, precision="fp32", provider_options=provider_options,
                                       threads=threads, shared_threads=shared_threads)
        report["calibrated"] = _calibrated(model, images, scored, costs, path_latency, batch, passes, reference, labels)
        report["calibrated"]["batch1_in_one_call"] = model.single_call_for() is not None
    return report


def per_image_seconds(images: np.ndarray, passes: int, *calls: tuple[EarlyExitModel, dict[str, Any]]) -> list[float]:
    """For each (model, `predict` setting), the median over `passes` of the mean seconds per image, each
    image alone; the calls take turns pass by pass (`medians_in_turns`), after one warm-up pass each."""
    def one_pass(model: EarlyExitModel, setting: dict[str, Any]) -> Callable[[], None]:
        def run() -> None:
            for i in range(len(images)):
                model.predict(images[i:i + 1], **setting)
        return run
    totals = medians_in_turns([one_pass(m, s) for m, s in calls], passes, warmup=1)
    return [t / len(images) for t in totals]


def _calibrated(model: EarlyExitModel, images: np.ndarray, scored: ExitScores, costs: np.ndarray, path_latency: np.ndarray,
                batch: int, passes: int, reference: EarlyExitModel | None, labels: np.ndarray) -> dict[str, Any]:
    """The calibrated operating point on test: accuracy, FLOPs, measured latency, throughput, the goals' ratios.

    Early exit and the full model are timed the same way, through `predict` (preprocessing checks,
    softmax and bookkeeping included): `mode='early'` against `mode='exit', exit=K`; with a `reference`
    (the FP32 graphs of a reduced-precision bundle) its full model takes the same turns."""
    thresholds = np.asarray(model.thresholds)
    scores, correct = scored.scores, scored.correct
    result = outcome(scores, correct, costs, thresholds, scored.exit_correct[-1])
    k_exits = model.num_exits
    full = {"mode": "exit", "exit": k_exits}
    calls = [(model, {"mode": "early"}), (model, full)] + ([(reference, full)] if reference is not None else [])
    measured, full_latency, *reference_latency = per_image_seconds(images, passes, *calls)
    # Batched: the early-exit loop with compaction vs the plain model, both at `batch`, passes in turns.
    chunks = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
    t_plain, t_early = medians_in_turns([lambda: [model.predict(c, mode="exit", exit=k_exits) for c in chunks],
                                         lambda: [model.predict(c, mode="early") for c in chunks]], passes, warmup=1)
    copies = {"batch_1": _mean_copies([model.predict(images[i:i + 1], mode="early") for i in range(min(len(images), 256))]),
              f"batch_{batch}": _mean_copies([model.predict(c, mode="early") for c in chunks])}
    full_accuracy = 100.0 * scored.exit_correct[-1].mean()
    oracle_cost = oracle_cost_at(scored.exit_correct, costs, result.accuracy)
    same_accuracy = hindsight(scores, correct, costs, result.accuracy, scored.exit_correct[-1], known=result)
    policy = model.manifest.operating_point(model.precision)[0]
    at_target = None  # also where not even never exiting early keeps the target (a final ensemble below the final exit)
    if policy is not None and policy.target_drop is not None:
        at_target = hindsight(scores, correct, costs, full_accuracy - policy.target_drop, scored.exit_correct[-1], known=same_accuracy)
    predicted_speedup = 1.0 / result.cost
    return {
        "thresholds": thresholds.tolist(), "policy": model.policy_name, "running_ensemble": model.running_ensemble,
        "agreement": model.agreement, "final_ensemble": model.final_ensemble, "gate": bool(model.gate), "accuracy": round(result.accuracy, 3),
        "accuracy_drop": round(full_accuracy - result.accuracy, 3), "flops_fraction": round(result.cost, 4),
        "exit_counts": list(result.exit_counts), "passes": passes,
        "latency_ms_batch1": round(1e3 * measured, 4), "full_latency_ms_batch1": round(1e3 * full_latency, 4),
        "latency_ratio_vs_full": round(measured / full_latency, 4),
        "latency_ms_predicted_from_segments": round(1e3 * float(path_latency[assign_exits(scores, thresholds)].mean()), 4),
        "flops_predicted_speedup": round(predicted_speedup, 4), "measured_speedup": round(full_latency / measured, 4),
        "speedup_realised": round((full_latency / measured) / predicted_speedup, 4),
        "oracle_flops_fraction_at_same_accuracy": round(oracle_cost, 4),
        "flops_saving_vs_oracle": _share_of_oracle_saving(result.cost, oracle_cost),
        "hindsight": {"same_accuracy": _point(same_accuracy, oracle_cost),
                      "target_drop": policy.target_drop if at_target is not None else None,
                      "at_target_drop": None if at_target is None else _point(at_target, oracle_cost_at(scored.exit_correct, costs, at_target.accuracy))},
        "batch": batch, "throughput_full": round(len(chunks) * batch / t_plain, 1),
        "throughput_early": round(len(chunks) * batch / t_early, 1), "throughput_ratio": round(t_plain / t_early, 4),
        "host_copies": copies,
        **({"vs_fp32_full": _against_fp32(reference, images, labels, result.accuracy, measured, reference_latency[0])}
           if reference is not None else {}),
    }


def _share_of_oracle_saving(cost: float, oracle_cost: float) -> float:
    """The FLOPs a point saves as a share of what the oracle saves at the same accuracy."""
    return round((1 - cost) / max(1e-9, 1 - oracle_cost), 4)


def _point(point: Outcome, oracle_cost: float) -> dict[str, Any]:
    """A hindsight point for the report, with its share of the oracle's FLOP saving at its accuracy."""
    return {"accuracy": round(point.accuracy, 3), "flops_fraction": round(point.cost, 4), "exit_counts": list(point.exit_counts),
            "flops_saving_vs_oracle": _share_of_oracle_saving(point.cost, oracle_cost)}


def _mean_copies(predictions: list[Any]) -> dict[str, float]:
    """The mean of each kind of host-device copy over the calls' `host_copies`, and their total."""
    counts = [asdict(p.host_copies) for p in predictions]
    mean = {key: round(float(np.mean([c[key] for c in counts])), 3) for key in counts[0]} if counts else {}
    return {**mean, "total": round(sum(mean.values()), 3)}


def _against_fp32(reference: EarlyExitModel, images: np.ndarray, labels: np.ndarray, accuracy: float, seconds: float,
                  reference_seconds: float) -> dict[str, Any]:
    """A reduced-precision operating point against the FP32 full model: accuracy drop and batch-1 latency ratio."""
    fp32_top1 = 100.0 * float((exit_logits(reference, images)[-1].argmax(1) == labels).mean())
    return {"fp32_full_test_top1": round(fp32_top1, 3), "accuracy_drop": round(fp32_top1 - accuracy, 3),
            "fp32_full_latency_ms_batch1": round(1e3 * reference_seconds, 4),
            "latency_ratio": round(seconds / reference_seconds, 4)}


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"{report['bundle']} ({report['precision']}) on {report['test_images']} test images",
             "exit  top-1   latency ms  FLOPs"]
    lines += [f"{e['exit']:>4}  {e['test_top1']:6.2f}  {e['latency_ms']:10.3f}  {e['flops_fraction']:.3f}" for e in report["per_exit"]]
    lines.append(f" ens  {report['ensemble_top1']:6.2f}  (mean softmax; mean logits {report['ensemble_logit_top1']:.2f})")
    o = report["oracle"]
    lines.append(f"oracle: {o['accuracy']:.2f}% at {o['flops_fraction']:.3f} of the FLOPs, exits {o['exit_counts']}")
    c = report.get("calibrated")
    if c:
        h = c["hindsight"]
        same, target = h["same_accuracy"], h["at_target_drop"]
        lines += [
            f"calibrated ({c['policy']}{', final exit: ensemble' if c.get('final_ensemble') else ''}, thresholds {', '.join(f'{t:.3f}' for t in c['thresholds'])}): {c['accuracy']:.2f}% "
            f"(drop {c['accuracy_drop']:+.2f} vs final exit), exits {c['exit_counts']}",
            f"  batch 1 (median of {c['passes']} passes over the test images, "
            f"{'one call' if c.get('batch1_in_one_call') else 'the segment chain'}): {c['latency_ms_batch1']:.3f} ms vs full "
            f"{c['full_latency_ms_batch1']:.3f} ms = "
            f"{c['latency_ratio_vs_full']:.3f}x latency",
            f"  FLOPs: {c['flops_fraction']:.3f} of the model; predicted speedup {c['flops_predicted_speedup']:.3f}x, measured "
            f"{c['measured_speedup']:.3f}x ({100 * c['speedup_realised']:.1f}% realised)",
            f"  FLOPs saved vs the oracle at the same accuracy: {100 * c['flops_saving_vs_oracle']:.1f}% "
            f"(oracle needs {c['oracle_flops_fraction_at_same_accuracy']:.3f})",
            f"  hindsight (thresholds searched on these test images): the same accuracy at {same['flops_fraction']:.3f} of the FLOPs "
            f"({100 * same['flops_saving_vs_oracle']:.1f}% of the oracle's saving)" + (
                f"; the {h['target_drop']:g}-point target at {target['flops_fraction']:.3f} ({target['accuracy']:.2f}%, "
                f"{100 * target['flops_saving_vs_oracle']:.1f}%)" if target else ""),
            f"  batch {c['batch']}: {c['throughput_early']:.0f} img/s early-exit vs {c['throughput_full']:.0f} img/s full = "
            f"{c['throughput_ratio']:.3f}x",
            "  host-device copies per batch (images, feature maps, kept rows, logits): " + "; ".join(
                f"{key.replace('_', ' ')} {v['images']:g}, {v['feature_maps']:g}, {v['rows']:g}, {v['logits']:g}"
                for key, v in c["host_copies"].items()),
        ]
        v = c.get("vs_fp32_full")
        if v:
            lines.append(f"  vs the FP32 full model ({v['fp32_full_test_top1']:.2f}%, {v['fp32_full_latency_ms_batch1']:.3f} ms): "
                         f"drop {v['accuracy_drop']:+.2f} points, {v['latency_ratio']:.3f}x latency")
    else:
        lines.append("no calibrated thresholds in the bundle: run `edgekd calibrate` for the operating point")
    return lines


def save(report: dict[str, Any], out: Path) -> list[Path]:
    """bench.json, and bench.png when matplotlib is available."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    written = [out / "bench.json"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    curve = report["curve"]
    for ax, key, label in ((axes[0], "latency_ms", "mean latency per image, batch 1 (ms)"), (axes[1], "flops_fraction", "mean FLOPs (fraction of the model)")):
        ax.plot([p[key] for p in curve], [p["accuracy"] for p in curve], ".-", label="shared threshold sweep")
        ax.plot([report["full_model"]["latency_ms"] if key == "latency_ms" else 1.0], [report["full_model"]["test_top1"]], "ks", label="full model")
        if key == "flops_fraction":
            ax.plot([report["oracle"]["flops_fraction"]], [report["oracle"]["accuracy"]], "g*", markersize=12, label="oracle")
        if report.get("calibrated"):
            c = report["calibrated"]
            ax.plot([c["latency_ms_batch1"] if key == "latency_ms" else c["flops_fraction"]], [c["accuracy"]], "r^", markersize=10, label="calibrated (measured)")
            if key == "flops_fraction":
                hindsight_points = [p for p in (c["hindsight"]["same_accuracy"], c["hindsight"]["at_target_drop"]) if p]
                ax.plot([p["flops_fraction"] for p in hindsight_points], [p["accuracy"] for p in hindsight_points], "mv", markersize=9,
                        linestyle="none", label="thresholds searched on test (hindsight)")
            if key == "latency_ms":
                ax.plot([c["full_latency_ms_batch1"]], [report["full_model"]["test_top1"]], "ks", fillstyle="none", markersize=9,
                        label="full model (measured like calibrated)")
        ax.set(xlabel=label, ylabel="test top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    counts = report["calibrated"]["exit_counts"] if report.get("calibrated") else report["oracle"]["exit_counts"]
    axes[2].bar([f"exit {k + 1}" for k in range(len(counts))], counts)
    axes[2].set(title="exit histogram (" + ("calibrated" if report.get("calibrated") else "oracle") + ")", ylabel="test images")
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=110)
    plt.close(fig)
    return written + [out / "bench.png"]
