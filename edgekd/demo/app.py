"""The Gradio demo over a bundle: what early exits buy, in latency and accuracy, side by side.

Tabs: Predict (early-exit answer, the exit taken, the score at every exit computed, latency; the
full student and an optional teacher bundle beside it, every model timed the same way: the median of
repeated calls through `predict`, taken in turns, with its 10th-90th percentile spread), Trade-off (an accuracy-drop control over the
validation images: accuracy, mean latency, exit histogram, Pareto plot with the operating point) and
Model card (per-exit params, FLOPs, latency, accuracy, and the manifest). Uses `edgekd.runtime` only.

Safe by default: bound to 127.0.0.1, no share link, uploads capped, a bounded queue, and the only
files served are the bundle's own examples. Bad uploads get a readable error; the server goes on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from edgekd.demo.tradeoff import OperatingPoint, TradeOff
from edgekd.errors import EdgekdError
from edgekd.runtime.images import to_batch
from edgekd.runtime.model import EarlyExitModel
from edgekd.runtime.timing import Spread, times_in_turns

MAX_UPLOAD = "10mb"
QUEUE_SIZE = 64
CONCURRENCY = 4
TIMED_CALLS = 21  # each model's latency in the Predict tab: the median of this many calls, taken in turns


class Demo:
    """The models and precomputed trade-off behind the page."""

    def __init__(self, bundle: str | Path, teacher_bundle: str | Path | None = None, data: str | Path | None = None) -> None:
        self.model = EarlyExitModel(bundle, shared_threads=True)
        self.teacher = EarlyExitModel(teacher_bundle, shared_threads=True) if teacher_bundle else None
        for model in filter(None, (self.model, self.teacher)):  # create every session now, not racing under load
            for name in model.manifest.graphs:
                model.session(name)
        self.tradeoff = TradeOff(self.model, data)
        policy = self.model.manifest.policy
        self.default_drop = float(policy.target_drop if policy and policy.target_drop is not None else 0.5)
        self.thresholds = self.tradeoff.for_drop(self.default_drop).thresholds
        self.examples = [str(Path(bundle) / e.file) for e in self.model.manifest.examples]

    # ------------------------------------------------------------------ predict

    def predict(self, path: str | None) -> tuple[np.ndarray | None, str, list[list[Any]], list[list[Any]]]:
        """The answer for one image; a file that is not a usable image gets its reason in the answer box."""
        if not path:
            return None, "**Upload an image or pick an example first.**", [], []
        try:
            batch = to_batch(path, self.model.manifest)
        except EdgekdError as err:
            reason = str(err).replace(str(path), Path(path).name)  # the server's temp path means nothing to the user
            return None, f"**This file cannot be classified.** {reason}", [], []
        calls = [lambda: self.model.predict(batch, mode="early", thresholds=self.thresholds),
                 lambda: self.model.predict(batch, mode="exit", exit=self.model.num_exits)]
        if self.teacher is not None:
            teacher_batch = to_batch(path, self.teacher.manifest)
            calls.append(lambda: self.teacher.predict(teacher_batch, mode="exit", exit=self.teacher.num_exits))
        early, final, *teacher = [call() for call in calls]
        spreads = [Spread.of(t) for t in times_in_turns(calls, TIMED_CALLS, warmup=1)]
        k = int(early.exits[0])
        answer = (f"### {early.class_names[0]}\nleft at **exit {k} of {self.model.num_exits}** with confidence "
                  f"{early.confidences[0]:.3f} in **{1e3 * spreads[0].median:.2f} ms** (full student "
                  f"{1e3 * spreads[1].median:.2f} ms; medians of {TIMED_CALLS} calls each, taken in turns)")
        per_exit = []
        for j in range(self.model.num_exits):
            score = early.exit_scores[0, j]
            threshold = f"{self.thresholds[j]:.3f}" if j < self.model.num_exits - 1 else "-"
            per_exit.append([j + 1, "-" if np.isnan(score) else f"{score:.3f}", threshold,
                             "exit taken" if j + 1 == k else "computed" if not np.isnan(score) else "skipped"])
        rows = [self._row("early-exit student", early.class_names[0], k, early.confidences[0], spreads[0]),
                self._row("full student (last exit)", final.class_names[0], self.model.num_exits, final.confidences[0], spreads[1])]
        if teacher:
            rows.append(self._row("teacher", teacher[0].class_names[0], self.teacher.num_exits, teacher[0].confidences[0], spreads[2]))
        preview = self.model.manifest.preprocess.to_pixels(batch)[0]
        return preview.transpose(1, 2, 0), answer, per_exit, rows

    @staticmethod
    def _row(who: str, label: str, exit_index: int, confidence: float, spread: Spread) -> list[Any]:
        return [who, label, exit_index, round(float(confidence), 4), round(1e3 * spread.median, 3),
                f"{1e3 * spread.low:.3f}-{1e3 * spread.high:.3f}"]

    # ------------------------------------------------------------------ trade-off

    def trade(self, drop: float) -> tuple[str, Any, Any]:
        point = self.tradeoff.for_drop(float(drop))
        self.thresholds = point.thresholds
        t = self.tradeoff
        text = (f"On **{t.images} validation images**: accuracy **{point.result.accuracy:.2f}%** (final exit "
                f"{t.exit_accuracy[-1]:.2f}%), mean latency **{point.latency_ms:.3f} ms** vs **{t.full_ms:.3f} ms** for the "
                f"full student ({point.latency_ms / t.full_ms:.2f}x), mean FLOPs {point.result.cost:.2f} of the model. "
                f"Thresholds: {', '.join(f'{x:.3f}' for x in point.thresholds)}. The Predict tab now uses them.")
        return text, self._histogram(point), self._pareto(point)

    def _histogram(self, point: OperatingPoint) -> Any:
        fig = Figure(figsize=(5, 3.2))
        ax = fig.subplots()
        ax.bar([f"exit {k + 1}" for k in range(len(point.result.exit_counts))], point.result.exit_counts, color="#4c72b0")
        ax.set(ylabel="validation images", title="where samples leave")
        fig.tight_layout()
        return fig

    def _pareto(self, point: OperatingPoint) -> Any:
        curve = self.tradeoff.curve()
        fig = Figure(figsize=(5.5, 3.6))
        ax = fig.subplots()
        ax.plot([p.latency_ms for p in curve], [p.result.accuracy for p in curve], ".-", color="#999999", label="threshold sweep")
        ax.plot([self.tradeoff.full_ms], [self.tradeoff.exit_accuracy[-1]], "ks", label="full student")
        ax.plot([point.latency_ms], [point.result.accuracy], "r^", markersize=11, label="operating point")
        ax.set(xlabel="mean latency per image, batch 1 (ms)", ylabel="validation top-1 (%)", title="accuracy vs latency")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    # ------------------------------------------------------------------ model card

    def card(self) -> list[list[Any]]:
        rows = []
        for j, e in enumerate(self.model.manifest.exits):
            rows.append([e.index, e.stage, f"{e.params / 1e6:.3f}M", f"{e.flops / 1e6:.1f}",
                         round(self.tradeoff.prefix_ms[j], 3), e.val_top1, round(self.tradeoff.exit_accuracy[j], 2)])
        return rows


def build(demo: Demo) -> gr.Blocks:
    source = demo.model.manifest.source
    with gr.Blocks(title="edgekd early-exit demo") as page:
        gr.Markdown(f"# edgekd: early exits\n`{source.run}` — {demo.model.num_exits} exits, "
                    f"{len(demo.model.classes)} classes, method `{source.method}`")
        with gr.Tab("Predict"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="Upload an image", file_types=["image"], type="filepath", elem_id="upload")
                    run = gr.Button("Classify", variant="primary", elem_id="classify")
                    if demo.examples:
                        gr.Examples(examples=[[p] for p in demo.examples], inputs=[upload], label="Examples from the bundle")
                with gr.Column():
                    preview = gr.Image(label="What the model sees", interactive=False, height=160)
                    answer = gr.Markdown(elem_id="answer")
            per_exit = gr.Dataframe(headers=["exit", "score", "threshold", "status"], label="Every exit computed", interactive=False)
            compare = gr.Dataframe(headers=["model", "label", "exit", "confidence", f"latency ms (median of {TIMED_CALLS})",
                                                        "10th-90th percentile ms"], label="Side by side", interactive=False)
            run.click(demo.predict, inputs=[upload], outputs=[preview, answer, per_exit, compare], api_name="predict")
        with gr.Tab("Trade-off"):
            drop = gr.Slider(0.0, 10.0, value=demo.default_drop, step=0.25, label="accuracy drop allowed vs the final exit (points)")
            stats = gr.Markdown()
            with gr.Row():
                histogram, pareto = gr.Plot(label="exit histogram"), gr.Plot(label="Pareto")
            drop.change(demo.trade, inputs=[drop], outputs=[stats, histogram, pareto], api_name="tradeoff")
            page.load(demo.trade, inputs=[drop], outputs=[stats, histogram, pareto])
        with gr.Tab("Model card"):
            gr.Dataframe(value=demo.card(), headers=["exit", "stage", "params", "MFLOPs", "latency ms (b=1)", "val top-1 (export)",
                                                     "val top-1 (here)"], interactive=False)
            gr.JSON(value=demo.model.manifest.to_json_dict(with_files=False), label="manifest.json")
    return page


def serve(bundle: str | Path, *, teacher_bundle: str | Path | None = None, data: str | Path | None = None,
          host: str = "127.0.0.1", port: int | None = None, block: bool = True) -> Any:
    """Start the demo server; with `block=False` return (app, local_url) and keep serving in the background."""
    demo = Demo(bundle, teacher_bundle, data)
    page = build(demo).queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    allowed = [str((Path(bundle) / "examples").resolve())] if demo.examples else []
    return page.launch(server_name=host, server_port=port, share=False, max_file_size=MAX_UPLOAD, allowed_paths=allowed,
                       prevent_thread_lock=not block, quiet=not block, show_error=True)
