"""EarlyExitModel: run a bundle's segments in a chain, letting confident samples leave early.

    model = EarlyExitModel("export/oto_resnet18")          # or EarlyExitModel.load(...)
    result = model.predict(["cat.jpg", "dog.png"])           # paths, PIL images or float32 NCHW
    result.labels, result.confidences, result.exits, result.timings

Segment 1 runs on the whole batch; only the samples whose score is below the exit's threshold go
on to segment 2, and so on, so a batch gets cheaper as it goes. No torch: numpy, Pillow, onnx and
onnxruntime only.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from edgekd.export.bundle import read_manifest
from edgekd.runtime.chain import ChainedSession, SegmentChain, chains_disagree
from edgekd.runtime.images import to_batch
from edgekd.runtime.layout import blocked_handoff
from edgekd.runtime.policies import policy as get_policy
from edgekd.runtime.policies import softmax
from edgekd.runtime.sessions import make_session, resolve_providers, session_options
from edgekd.errors import BadInput

log = logging.getLogger("edgekd.runtime")
MODES = ("auto", "early", "exit", "all")
# A batch whose largest feature map handed between segments reaches this many bytes gets the blocked
# segments that copy it out on every thread; smaller ones the segments where onnxruntime copies it, on
# one thread, inside the last convolution (see `layout`). Where the switch pays, on both CIFAR bundles:
# benchmarks/export_latency.py BUNDLE --pool shared --chains serial parallel --batches 1 2 4 8 16.
PARALLEL_COPY_BYTES = 512 * 1024
PRECISIONS = ("fp32", "int8", "tensorrt")


@dataclass
class Prediction:
    """Per sample: label, class name, confidence (the policy's score), exit taken (1-based) and the
    probabilities of that exit; per call: seconds spent in each graph. `mode='early'` adds
    `exit_scores` (N, K): the score at every exit computed for a sample, NaN past the one it took;
    `mode='all'` adds every exit's probabilities and the ensemble (whose argmax is then the label)."""

    labels: np.ndarray
    class_names: list[str]
    confidences: np.ndarray
    exits: np.ndarray
    probs: np.ndarray
    timings: dict[str, float]
    all_probs: list[np.ndarray] | None = None
    ensemble: np.ndarray | None = None
    exit_scores: np.ndarray | None = None

    def to_records(self) -> list[dict[str, Any]]:
        return [{"label": int(l), "class": n, "confidence": round(float(c), 6), "exit": int(e)}
                for l, n, c, e in zip(self.labels, self.class_names, self.confidences, self.exits)]


def _gather(groups: list[tuple[Any, int, np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, ...]:
    """Labels, confidences, exits (1-based) and probabilities of `n` samples from the groups that left
    together; a batch that left in one group (always the case at batch 1) needs no scattering."""
    if len(groups) == 1:
        _, k, probs, score = groups[0]
        return probs.argmax(1), score, np.full(n, k + 1), probs
    labels, exits = np.zeros(n, np.int64), np.zeros(n, np.int64)
    confidences, probs_taken = np.zeros(n, np.float32), np.zeros((n, groups[0][2].shape[1]), np.float32)
    for rows, k, probs, score in groups:
        labels[rows], confidences[rows], exits[rows], probs_taken[rows] = probs.argmax(1), score, k + 1, probs
    return labels, confidences, exits, probs_taken


class EarlyExitModel:
    """A bundle ready to run. `precision='int8'` uses the bundle's INT8 graphs, `'tensorrt'` its native
    TensorRT engines (built on this device; see `engines`); `shared_threads` puts
    every session of the process on one onnxruntime thread pool (faster; see `sessions`);
    `blocked_handoff=False` keeps the segments' feature maps in NCHW at every batch size (see `chain_for`)."""

    def __init__(self, bundle: str | Path, *, providers: Sequence[str] | None = None, threads: int | None = None,
                 precision: str = "fp32", verify: bool = True, shared_threads: bool = False, blocked_handoff: bool = True) -> None:
        self.bundle = Path(bundle)
        self.manifest = read_manifest(self.bundle, verify=verify)
        if precision not in PRECISIONS:
            raise BadInput(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
        if precision == "int8" and "int8" not in self.manifest:
            raise BadInput(f"{self.bundle} has no INT8 graphs; export it with --format onnx-int8")
        if precision == "tensorrt" and "tensorrt" not in self.manifest:
            raise BadInput(f"{self.bundle} has no TensorRT engines; build them on this device with "
                           f"`edgekd export {self.bundle} --format tensorrt`")
        self.precision = precision
        self.graph_dir = self.bundle / (self.manifest["int8"]["dir"] if precision == "int8" else "")
        self.providers = resolve_providers(providers, self.bundle)
        self.threads, self.shared_threads, self.blocked_handoff = threads, shared_threads, blocked_handoff
        self.num_exits = len(self.manifest["exits"])
        self.classes: list[str] = list(self.manifest["classes"])
        self._sessions: dict[str, Any] = {}
        self._chain: SegmentChain | None = None
        self._blocked_chains: dict[bool, SegmentChain] = {}  # by parallel_copy
        self._handoff_bytes = max((4 * int(np.prod(e["feature_shape"])) for e in self.manifest["exits"][:-1]), default=0)
        calibrated = self.manifest.get("thresholds") or None
        self.policy_name: str = (self.manifest.get("policy") or {}).get("name", "max_prob")
        self.thresholds: list[float] | None = list(calibrated) if calibrated else None
        self.temperatures: list[float] = list((self.manifest.get("policy") or {}).get("temperatures") or [1.0] * self.num_exits)

    @classmethod
    def load(cls, bundle: str | Path, providers: Sequence[str] | None = None, threads: int | None = None, **kwargs: Any) -> "EarlyExitModel":
        return cls(bundle, providers=providers, threads=threads, **kwargs)

    def session(self, name: str) -> Any:
        """The onnxruntime session of graph `name` (segment_k, prefix_k, full), created on first use."""
        if name not in self._sessions:
            if self.precision == "tensorrt":
                self._sessions[name] = self._engine_session(name)
            else:
                self._sessions[name] = make_session(self._graph_path(name), self.providers, self.threads, share_pool=self.shared_threads)
        return self._sessions[name]

    def _graph_path(self, name: str) -> Path:
        return self.graph_dir / self.manifest["graphs"][name]["file"]

    @property
    def chain(self) -> SegmentChain:
        """The segment sessions as one chain (see `chain`), feature maps in NCHW between them."""
        if self._chain is None:
            segments = [self.session(f"segment_{k}") for k in range(1, self.num_exits + 1)]
            self._chain = SegmentChain.for_bundle(segments, self.manifest)
        return self._chain

    def chain_for(self, rows: int) -> SegmentChain:
        """The chain the early-exit loop runs a batch of `rows` on: on CPU, `blocked_chain`, copying feature
        maps out on every thread once a batch's largest reaches `PARALLEL_COPY_BYTES`; otherwise `chain`."""
        if not self.blocked_handoff or self.precision == "tensorrt" or self.providers != ["CPUExecutionProvider"]:
            return self.chain
        return self.blocked_chain(parallel_copy=rows * self._handoff_bytes >= PARALLEL_COPY_BYTES)

    def blocked_chain(self, parallel_copy: bool) -> SegmentChain:
        """The segments handing feature maps on in onnxruntime's blocked layout where it allows (see
        `layout`), in-place sums copied out on one thread or (`parallel_copy`) on every thread; `chain`
        where nothing can stay blocked. The blocked layout is onnxruntime's internal graph rewrite, so the
        blocked chain is probed when it is built: it must build and give the NCHW chain's logits on a probe
        batch, else `chain` serves instead (one debug line on the `edgekd.runtime` logger says why)."""
        if parallel_copy not in self._blocked_chains:
            blocked, reason = self._probed_blocked_chain(parallel_copy)
            if blocked is None:
                log.debug("%s: segments hand feature maps on in NCHW%s (onnxruntime %s): %s", self.bundle,
                          " for large batches" if parallel_copy else "", ort.__version__, reason)
            self._blocked_chains[parallel_copy] = blocked or self.chain
        return self._blocked_chains[parallel_copy]

    def _probed_blocked_chain(self, parallel_copy: bool) -> tuple[SegmentChain | None, str]:
        """The blocked chain if it builds and agrees with `chain`; else None and why not."""
        paths = [self._graph_path(f"segment_{k}") for k in range(1, self.num_exits + 1)]
        try:
            graphs = blocked_handoff(paths, lambda: session_options(self.threads, share_pool=self.shared_threads),
                                     parallel_copy=parallel_copy)
            if graphs is None:
                return None, "onnxruntime's CPU optimizer keeps no segment boundary of this bundle in its blocked layout"
            blocked = SegmentChain.for_bundle(
                [make_session(g, self.providers, self.threads, share_pool=self.shared_threads, optimized=True) for g in graphs],
                self.manifest)
            disagreement = chains_disagree(blocked, self.chain, self.manifest["input"]["shape"])
        except Exception as err:  # noqa: BLE001 - a changed internal rewrite may fail anywhere; the NCHW chain stays right
            return None, f"the blocked segments failed to build or run ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        return (None, disagreement) if disagreement else (blocked, "")

    def _engine_session(self, name: str) -> Any:
        """A native TensorRT engine for segment_k; prefix_k and full chain the segment engines."""
        from edgekd.runtime.engines import EngineSession

        if name.startswith("segment_"):
            engine = self.bundle / self.manifest["tensorrt"]["engines"][name]
            return EngineSession(engine, self.manifest["graphs"][name]["outputs"])
        return ChainedSession(self.chain, None if name == "full" else int(name.split("_")[1]))

    def scores(self, logits: np.ndarray, exit_index: int, policy: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, policy scores) of exit `exit_index` (0-based), temperature-scaled."""
        probs = softmax(logits, self.temperatures[exit_index])
        return probs, get_policy(policy or self.policy_name)(probs)

    def predict(self, inputs: Any, *, mode: str = "auto", exit: int | None = None, thresholds: Sequence[float] | None = None,
                policy: str | None = None) -> Prediction:
        """Classify `inputs`. Modes: `early` (threshold policy), `exit` (always leave at `exit`, 1-based),
        `all` (every exit plus the ensemble), `auto` (early when thresholds exist, else the final exit)."""
        if mode not in MODES:
            raise BadInput(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
        batch = to_batch(inputs, self.manifest)
        thresholds = list(thresholds) if thresholds is not None else self.thresholds
        if mode == "auto":
            mode, exit = ("early", None) if thresholds else ("exit", self.num_exits)
        if mode == "early":
            if not thresholds:
                raise BadInput(f"{self.bundle} has no calibrated thresholds: run `edgekd calibrate {self.bundle} --data ...`, "
                               f"pass thresholds=[...], or use mode='exit' / mode='all'")
            if len(thresholds) < self.num_exits - 1:
                raise BadInput(f"need a threshold for each of the {self.num_exits - 1} early exits, got {len(thresholds)}")
            return self._early(batch, thresholds, policy)
        if mode == "exit":
            if exit is None or not 1 <= exit <= self.num_exits:
                raise BadInput(f"mode='exit' needs exit=1..{self.num_exits}, got {exit}")
            return self._fixed(batch, exit, policy)
        return self._all(batch, policy)

    def _early(self, batch: np.ndarray, thresholds: Sequence[float], policy: str | None) -> Prediction:
        n, last = len(batch), self.num_exits - 1
        exit_scores = np.full((n, self.num_exits), np.nan)
        left: list[tuple[Any, int, np.ndarray, np.ndarray]] = []  # (rows, exit, probs, scores) of each group that left
        timings: dict[str, float] = {}
        remaining: Any = slice(None)  # rows of the batch still running: all of them until someone leaves
        step = self.chain_for(n).start(batch)
        while True:
            k = step.segment
            timings[f"segment_{k + 1}"] = step.seconds
            probs, score = self.scores(step.logits, k, policy)
            exit_scores[remaining, k] = score
            if k == last:
                left.append((remaining, k, probs, score))
                break
            done = score >= thresholds[k]
            leaving = np.count_nonzero(done)
            if leaving == len(score):  # everyone left: no compaction
                left.append((remaining, k, probs, score))
                break
            if leaving:
                rows = np.arange(n)[remaining]
                left.append((rows[done], k, probs[done], score[done]))
                remaining = rows[~done]
                step.advance(~done)
            else:  # nobody leaves here: the whole batch goes on
                step.advance()
        timings["total"] = sum(timings.values())
        labels, confidences, exits, probs_taken = _gather(left, n)
        return Prediction(labels, [self.classes[i] for i in labels], confidences, exits, probs_taken, timings,
                          exit_scores=exit_scores)

    def _fixed(self, batch: np.ndarray, exit: int, policy: str | None) -> Prediction:
        name = f"prefix_{exit}"
        session = self.session(name)
        start = time.perf_counter()
        (logits,) = session.run(None, {"image": batch})
        timings = {name: time.perf_counter() - start}
        timings["total"] = timings[name]
        probs, score = self.scores(logits, exit - 1, policy)
        labels = probs.argmax(1)
        return Prediction(labels, [self.classes[i] for i in labels], score, np.full(len(batch), exit), probs, timings)

    def _all(self, batch: np.ndarray, policy: str | None) -> Prediction:
        session = self.session("full")
        start = time.perf_counter()
        logits = session.run(None, {"image": batch})
        timings = {"full": time.perf_counter() - start}
        timings["total"] = timings["full"]
        all_probs = [self.scores(z, k, policy)[0] for k, z in enumerate(logits)]
        ensemble = np.mean(all_probs, axis=0)
        labels = ensemble.argmax(1)
        score = get_policy(policy or self.policy_name)(ensemble)
        return Prediction(labels, [self.classes[i] for i in labels], score, np.full(len(batch), self.num_exits), ensemble,
                          timings, all_probs=all_probs, ensemble=ensemble)
