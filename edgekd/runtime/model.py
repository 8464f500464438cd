"""EarlyExitModel: run a bundle's segments in a chain, letting confident samples leave early.

    model = EarlyExitModel("export/oto_resnet18")          # or EarlyExitModel.load(...)
    result = model.predict(["cat.jpg", "dog.png"])           # paths, PIL images or float32 NCHW
    result.labels, result.confidences, result.exits, result.timings

Segment 1 runs on the whole batch; only the samples whose score is below the exit's threshold go
on to segment 2, and so on, so a batch gets cheaper as it goes. The graphs run on a backend
(`backends`: onnxruntime CPU, CUDA or TensorRT provider, or native TensorRT engines). No torch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekd.bundle import Manifest, names, read_manifest
from edgekd.errors import BadInput
from edgekd.runtime.backends import Backend, open_backend
from edgekd.runtime.chain import Chain, HostCopies, SegmentChain
from edgekd.runtime.gate import GATE_FEATURES
from edgekd.runtime.images import to_batch
from edgekd.runtime.policies import softmax
from edgekd.runtime.policies import policy as get_policy
from edgekd.runtime.single_call import POLICIES as SINGLE_CALL_POLICIES
from edgekd.runtime.single_call import SingleCall
from edgekd.runtime.trail import ExitTrail

MODES = ("auto", "early", "exit", "all")


@dataclass
class Prediction:
    """Per sample: label, class name, confidence (the policy's score), exit taken (1-based) and the
    probabilities of that exit; per call: seconds spent in each graph. `mode='early'` adds
    `exit_scores` (N, K): the score at every exit computed for a sample, NaN past the one it took, and
    `host_copies`, what the call moved between host and device memory (all zero on CPU);
    `mode='all'` adds every exit's probabilities, the ensemble (mean of the exits' probabilities,
    whose argmax is then the label) and `ensemble_logits` (mean of the exits' logits, BYOT's ensemble).
    The label follows the mean of probabilities: each exit's vote is bounded and temperature-scaled,
    so one exit with large logits cannot outvote the others (docs/runtime.md)."""

    labels: np.ndarray
    class_names: list[str]
    confidences: np.ndarray
    exits: np.ndarray
    probs: np.ndarray
    timings: dict[str, float]
    all_probs: list[np.ndarray] | None = None
    ensemble: np.ndarray | None = None
    ensemble_logits: np.ndarray | None = None
    exit_scores: np.ndarray | None = None
    host_copies: HostCopies | None = None  # `mode='early'`: what the call moved between host and device

    def to_records(self) -> list[dict[str, Any]]:
        return [{"label": int(l), "class": n, "confidence": round(float(c), 6), "exit": int(e)}
                for l, n, c, e in zip(self.labels, self.class_names, self.confidences, self.exits)]


def _gate_weights(gate: list[list[float]], num_exits: int, bundle: Path) -> list[np.ndarray]:
    """The manifest's gate as arrays, checked against the features this runtime computes."""
    if gate and (len(gate) != num_exits - 1 or any(len(w) != len(GATE_FEATURES) + 1 for w in gate)):
        raise BadInput(f"{bundle}'s exit gate does not fit this edgekd ({len(GATE_FEATURES)} features per early exit); "
                       f"run `edgekd calibrate {bundle} --gate ...` again")
    return [np.asarray(w, np.float64) for w in gate]


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
    """A bundle ready to run on a backend chosen by name (`backends`): `cpu` (the default), `cuda`,
    `tensorrt` (onnxruntime's TensorRT provider) or `tensorrt-engines` (native engines built on this
    device). `precision` picks the bundle's graph set (`fp32`, `fp16`, `int8`, `int8-u8s8`; the engines
    have the one they were built with); `provider_options` go to the onnxruntime provider on top of the
    backend's defaults; `shared_threads` puts every session of the process on one onnxruntime thread
    pool (faster; see `sessions`); `blocked_handoff=False` keeps the CPU segments' feature maps in NCHW
    at every batch size (see `backends.onnxruntime_cpu`); `single_call=False` runs a single image's early
    exit through the segment chain like a batch, not as one call of the joined graph (`single_call`)."""

    def __init__(self, bundle: str | Path, *, backend: str = "cpu", precision: str | None = None, threads: int | None = None,
                 provider_options: dict[str, Any] | None = None, verify: bool = True, shared_threads: bool = False,
                 blocked_handoff: bool = True, single_call: bool = True) -> None:
        self.bundle = Path(bundle)
        self.manifest: Manifest = read_manifest(self.bundle, verify=verify)
        options = {"blocked_handoff": blocked_handoff} if backend == "cpu" else {}
        self.backend: Backend = open_backend(backend, self.bundle, self.manifest, precision=precision, threads=threads,
                                             shared_threads=shared_threads, provider_options=provider_options, **options)
        self.precision = self.backend.precision
        self.num_exits = self.manifest.num_exits
        self.classes: list[str] = list(self.manifest.classes)
        policy, thresholds = self.manifest.operating_point(self.precision)
        self.policy_name: str = policy.name if policy else "max_prob"
        self.thresholds: list[float] | None = list(thresholds) if thresholds else None
        self.temperatures: list[float] = list(policy.temperatures) if policy else [1.0] * self.num_exits
        self.running_ensemble: bool = bool(policy and policy.running_ensemble)
        self.agreement: bool = bool(policy and policy.agreement)
        self.final_ensemble: bool = bool(policy and policy.final_ensemble)
        self.gate: list[np.ndarray] = _gate_weights(policy.gate, self.num_exits, self.bundle) if policy else []
        self.single_call = single_call

    @classmethod
    def load(cls, bundle: str | Path, **kwargs: Any) -> "EarlyExitModel":
        return cls(bundle, **kwargs)

    @property
    def providers(self) -> list[Any]:
        return self.backend.providers

    def session(self, name: str) -> Any:
        """The session of graph `name` (segment_k, prefix_k, full), created on first use."""
        return self.backend.session(name)

    @property
    def chain(self) -> SegmentChain:
        """The segment sessions as one chain, feature maps in NCHW between them."""
        return self.backend.chain

    def chain_for(self, rows: int) -> Chain:
        """The chain the early-exit loop runs a batch of `rows` on (the backend's choice): on CPU a host
        `SegmentChain`, on CUDA and TensorRT a `DeviceChain` that keeps feature maps on the GPU."""
        return self.backend.chain_for(rows)

    def scores(self, logits: np.ndarray, exit_index: int, policy: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, policy scores) of exit `exit_index` (0-based), temperature-scaled."""
        probs = softmax(logits, self.temperatures[exit_index])
        return probs, get_policy(policy or self.policy_name)(probs)

    def trail(self, policy: str | None = None) -> ExitTrail:
        """A fresh walk down the exits with this model's policy, temperatures and look-back options. The gate
        belongs to the calibrated policy: naming another `policy` scores with that policy alone."""
        gate = self.gate if policy in (None, self.policy_name) else []
        return ExitTrail(get_policy(policy or self.policy_name), self.temperatures, self.running_ensemble, self.agreement, gate,
                         self.final_ensemble)

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

    def single_call_for(self, policy: str | None = None) -> SingleCall | None:
        """The joined batch-1 early-exit graph for `policy` (the calibrated one by default), where the backend
        runs one and the policy is computed in it, the final exit's ensemble too: the early exits' look-back options
        (running ensemble, agreement, a gate) need the chain. None: a single image walks the segment chain."""
        name = policy or self.policy_name
        looks_back = self.running_ensemble or self.agreement or bool(self.gate and name == self.policy_name)
        if not self.single_call or looks_back or name not in SINGLE_CALL_POLICIES:
            return None
        return self.backend.single_call(name, get_policy(name), self.temperatures, self.final_ensemble)

    def _early(self, batch: np.ndarray, thresholds: Sequence[float], policy: str | None) -> Prediction:
        call = self.single_call_for(policy) if len(batch) == 1 else None
        if call is not None:
            return self._early_in_one_call(call, batch, thresholds)
        n, last = len(batch), self.num_exits - 1
        exit_scores = np.full((n, self.num_exits), np.nan)
        left: list[tuple[Any, int, np.ndarray, np.ndarray]] = []  # (rows, exit, probs, scores) of each group that left
        timings: dict[str, float] = {}
        remaining: Any = slice(None)  # rows of the batch still running: all of them until someone leaves
        trail = self.trail(policy)
        step = self.chain_for(n).start(batch)
        while True:
            k = step.segment
            timings[names.segment(k + 1)] = step.seconds
            probs, score = trail.step(step.logits, k)
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
                trail.keep(~done)
                step.advance(~done)
            else:  # nobody leaves here: the whole batch goes on
                step.advance()
        timings["total"] = sum(timings.values())
        labels, confidences, exits, probs_taken = _gather(left, n)
        return Prediction(labels, [self.classes[i] for i in labels], confidences, exits, probs_taken, timings,
                          exit_scores=exit_scores, host_copies=step.copies)

    def _early_in_one_call(self, call: SingleCall, batch: np.ndarray, thresholds: Sequence[float]) -> Prediction:
        start = time.perf_counter()
        probs, scores, exit = call.run(batch, thresholds)
        seconds = time.perf_counter() - start
        label = int(probs[0].argmax())
        return Prediction(np.array([label]), [self.classes[label]], scores[:, exit - 1].copy(), np.array([exit]), probs,
                          {"single_call": seconds, "total": seconds}, exit_scores=scores.astype(np.float64),
                          host_copies=HostCopies())

    def _fixed(self, batch: np.ndarray, exit: int, policy: str | None) -> Prediction:
        name = names.prefix(exit)
        session = self.session(name)
        start = time.perf_counter()
        (logits,) = session.run(None, {names.IMAGE: batch})
        timings = {name: time.perf_counter() - start}
        timings["total"] = timings[name]
        probs, score = self.scores(logits, exit - 1, policy)
        labels = probs.argmax(1)
        return Prediction(labels, [self.classes[i] for i in labels], score, np.full(len(batch), exit), probs, timings)

    def _all(self, batch: np.ndarray, policy: str | None) -> Prediction:
        session = self.session(names.FULL)
        start = time.perf_counter()
        logits = session.run(None, {names.IMAGE: batch})
        timings = {names.FULL: time.perf_counter() - start}
        timings["total"] = timings[names.FULL]
        all_probs = [self.scores(z, k, policy)[0] for k, z in enumerate(logits)]
        ensemble = np.mean(all_probs, axis=0)
        labels = ensemble.argmax(1)
        score = get_policy(policy or self.policy_name)(ensemble)
        return Prediction(labels, [self.classes[i] for i in labels], score, np.full(len(batch), self.num_exits), ensemble,
                          timings, all_probs=all_probs, ensemble=ensemble, ensemble_logits=np.mean(logits, axis=0))
