"""A bundle's segments run one after another, each feeding the next.

At batch 1 a segment of a small model runs in a few hundred microseconds, so what happens between
segments counts: with plain `session.run` every feature map is copied out of onnxruntime into a
new numpy array and handed back in. `SegmentChain` instead binds (onnxruntime IOBinding) each
CPU segment's outputs to buffers that the next segment's binding reads, so a feature map stays
where it was written (on CPU, in onnxruntime's blocked layout where `layout` could keep it so); the
samples kept after an exit are compacted once, into the next segment's input buffer. Buffers belong
to the calling thread, so several threads can share a model, and are used for batches of up to
`MAX_BOUND_ROWS` (larger batches, and sessions on other devices or native TensorRT engines, run
with plain `run`, where copies are small next to the compute).

On a GPU the chain that keeps feature maps in device memory is `device_chain.DeviceChain`; both
answer the `Chain` protocol, and every pass counts what it moved between host and device
(`HostCopies`), which `edgekd bench` reports.

`ChainedSession` composes the segments into the prefix and full graphs (image -> logits of exit k,
or of every exit), for backends that only have segment graphs and for latency comparisons.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, Sequence

import numpy as np

from edgekd.bundle import Manifest, names

MAX_BOUND_ROWS = 64
CACHE_LINE = 64  # bytes: the width of onnxruntime's AVX-512 loads, which split when a buffer straddles lines


class InputArg(NamedTuple):
    name: str


@dataclass
class HostCopies:
    """What one batch moved between host memory and the memory the segments compute in: the images
    in, feature maps out and back in, kept-row indices in, logits out (one count per array). All zero
    where the segments run on the host's own memory (onnxruntime's CPU provider)."""

    images: int = 0
    feature_maps: int = 0
    rows: int = 0
    logits: int = 0

    @property
    def total(self) -> int:
        return self.images + self.feature_maps + self.rows + self.logits


class Pass(Protocol):
    """One batch on its way through a chain (`ChainPass`, `device_chain.DevicePass`)."""

    segment: int
    rows: int
    seconds: float
    logits: np.ndarray
    copies: HostCopies

    def advance(self, keep: np.ndarray | None = None) -> None: ...


class Chain(Protocol):
    """A bundle's segments as the early-exit loop runs them (`SegmentChain`, `device_chain.DeviceChain`)."""

    max_rows: int | None  # the largest batch it runs (None: any)

    def __len__(self) -> int: ...

    def start(self, images: np.ndarray) -> Pass: ...

    def run_through(self, images: np.ndarray, exits: int) -> list[np.ndarray]: ...


def aligned_empty(shape: Sequence[int]) -> np.ndarray:
    """An uninitialised float32 array starting on a cache line: numpy promises only 16-byte alignment,
    and how fast onnxruntime read a buffer depended on where malloc had put it."""
    size = int(np.prod(shape)) * 4
    raw = np.empty(size + CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + size].view(np.float32).reshape(shape)


class _Buffers:
    """One thread's buffers for batches of up to `rows`, and the IOBindings that point into them."""

    def __init__(self, rows: int, image_shape: Sequence[int], feature_shapes: Sequence[Sequence[int]], classes: int) -> None:
        self.rows = rows
        self.image = aligned_empty((rows, *image_shape))
        self.features = [aligned_empty((rows, *s)) for s in feature_shapes]
        self.kept = [aligned_empty((rows, *s)) for s in feature_shapes[:-1]]  # compacted input of segment k+1
        self.logits = [aligned_empty((rows, classes)) for _ in feature_shapes]
        self.bindings: dict[tuple[int, int, bool], Any] = {}


def _bind(bind: Any, name: str, array: np.ndarray) -> None:
    bind(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)


def _cpu_only(session: Any) -> bool:
    return hasattr(session, "io_binding") and session.get_providers() == ["CPUExecutionProvider"]


class SegmentChain:
    """The segment sessions of a bundle, run in order; `start(images)` runs the first segment."""

    max_rows = None

    def __init__(self, segments: Sequence[Any], outputs: Sequence[Sequence[str]], image_shape: Sequence[int],
                 feature_shapes: Sequence[Sequence[int]], classes: int, bind: bool = True) -> None:
        """`outputs`: each segment's (feature, logits) output names; shapes without the batch axis.
        `bind=False` hands feature maps on by plain `run` even where buffers could be bound."""
        self.segments = list(segments)
        self.input_names = [s.get_inputs()[0].name for s in self.segments]
        self.outputs = [list(o) for o in outputs]
        self._shapes = (tuple(image_shape), [tuple(s) for s in feature_shapes], classes)
        self.on_host = all(_cpu_only(s) for s in self.segments)
        self.bound = bind and self.on_host
        self._local = threading.local()

    @classmethod
    def for_bundle(cls, segments: Sequence[Any], manifest: Manifest, bind: bool = True) -> "SegmentChain":
        """The chain of a bundle's segment sessions (segment_1 first), names from its manifest; the
        feature maps' shapes are the ones the sessions produce (onnxruntime's blocked layout may pad
        channels, see `layout`), from one image of zeros."""
        outputs = [manifest.graphs[names.segment(k)].outputs for k in range(1, len(segments) + 1)]
        feature = np.zeros((1, *manifest.input.shape), np.float32)
        shapes = []
        for segment in segments:
            feature = segment.run(None, {segment.get_inputs()[0].name: feature})[0]
            shapes.append(feature.shape[1:])
        return cls(segments, outputs, manifest.input.shape, shapes, len(manifest.classes), bind)

    def __len__(self) -> int:
        return len(self.segments)

    def buffers(self, rows: int) -> _Buffers:
        """This thread's buffers, grown to hold `rows` samples."""
        current = getattr(self._local, "buffers", None)
        if current is None or current.rows < rows:
            current = self._local.buffers = _Buffers(rows, *self._shapes)
        return current

    def binding(self, buffers: _Buffers, k: int, rows: int, kept: bool) -> Any:
        """Segment k (0-based) reading `rows` samples from the image buffer (k = 0), the previous
        segment's output buffer, or (`kept`) the compacted buffer, and writing into its own."""
        key = (k, rows, kept)
        if key not in buffers.bindings:
            binding = self.segments[k].io_binding()
            source = buffers.image if k == 0 else (buffers.kept if kept else buffers.features)[k - 1]
            _bind(binding.bind_input, self.input_names[k], source[:rows])
            _bind(binding.bind_output, self.outputs[k][0], buffers.features[k][:rows])
            _bind(binding.bind_output, self.outputs[k][1], buffers.logits[k][:rows])
            buffers.bindings[key] = binding
        return buffers.bindings[key]

    def start(self, images: np.ndarray) -> "ChainPass":
        return ChainPass(self, images)

    def run_through(self, images: np.ndarray, exits: int) -> list[np.ndarray]:
        """The logits of exits 1..`exits` for every image: the first `exits` segments run on the whole
        batch, with none of the early-exit loop's bookkeeping."""
        rows, logits = len(images), []
        if not (self.bound and rows <= MAX_BOUND_ROWS):
            feature = images
            for k in range(exits):
                feature, exit_logits = self.segments[k].run(None, {self.input_names[k]: feature})
                logits.append(exit_logits)
            return logits
        buffers = self.buffers(rows)
        np.copyto(buffers.image[:rows], images)
        for k in range(exits):
            self.segments[k].run_with_iobinding(self.binding(buffers, k, rows, kept=False))
            logits.append(buffers.logits[k][:rows].copy())
        return logits


PROBE_ROWS = 3
PROBE_TOLERANCE = 1e-4  # relative to the logits' scale: the same kernels in another layout differ by rounding only


def chains_disagree(chain: Chain, reference: Chain, image_shape: Sequence[int]) -> str | None:
    """Where `chain`'s logits differ from `reference`'s on a seeded random batch (every exit, through the
    bound buffers and through compaction), or None where they agree."""
    images = np.random.default_rng(0).standard_normal((PROBE_ROWS, *image_shape)).astype(np.float32)
    keep = np.arange(PROBE_ROWS) != 1
    got, expected = _probe_logits(chain, images, keep), _probe_logits(reference, images, keep)
    for k, (a, b) in enumerate(zip(got, expected)):
        scale = max(1.0, float(np.abs(b).max()))
        if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=PROBE_TOLERANCE * scale):
            return f"exit {k + 1}'s logits differ from the NCHW chain's (max abs diff {float(np.abs(a - b).max()):.3g})" \
                if a.shape == b.shape else f"exit {k + 1}'s logits have shape {a.shape}, not {b.shape}"
    return None


def _probe_logits(chain: Chain, images: np.ndarray, keep: np.ndarray) -> list[np.ndarray]:
    """Every exit's logits of `images`, then those of exits 2.. on the rows `keep` selects (compacted after exit 1)."""
    logits = chain.run_through(images, len(chain))
    if len(chain) < 2:
        return logits
    step = chain.start(images)
    step.advance(keep)
    compacted = [step.logits.copy()]
    while step.segment < len(chain) - 1:
        step.advance()
        compacted.append(step.logits.copy())
    return logits + compacted


class ChainPass:
    """One batch on its way through the chain: `feature` and `logits` of the segment just run
    (`segment`, 0-based; they are reused by the next call in this thread, so copy what you keep),
    `seconds` it took; `advance(keep)` runs the next segment on every sample or on the kept ones."""

    def __init__(self, chain: SegmentChain, images: np.ndarray) -> None:
        self.chain, self.segment, self.rows = chain, 0, len(images)
        self.copies = HostCopies()
        self._buffers = chain.buffers(self.rows) if chain.bound and self.rows <= MAX_BOUND_ROWS else None
        if self._buffers is not None:
            np.copyto(self._buffers.image[:self.rows], images)
            self._run_bound(kept=False)
        else:
            self._run_plain(images)

    def advance(self, keep: np.ndarray | None = None) -> None:
        """Run the next segment on the samples where `keep` is True (all of them when None)."""
        feature, self.segment = self.feature, self.segment + 1
        if keep is not None:
            self.rows = int(np.count_nonzero(keep))
        if self._buffers is None:
            self._run_plain(feature if keep is None else feature[keep])
            return
        if keep is not None:
            np.compress(keep, feature, axis=0, out=self._buffers.kept[self.segment - 1][:self.rows])
        self._run_bound(kept=keep is not None)

    def _run_bound(self, kept: bool) -> None:
        k, buffers = self.segment, self._buffers
        binding = self.chain.binding(buffers, k, self.rows, kept)
        start = time.perf_counter()
        self.chain.segments[k].run_with_iobinding(binding)
        self.seconds = time.perf_counter() - start
        self.feature, self.logits = buffers.features[k][:self.rows], buffers.logits[k][:self.rows]

    def _run_plain(self, x: np.ndarray) -> None:
        k = self.segment
        start = time.perf_counter()
        self.feature, self.logits = self.chain.segments[k].run(None, {self.chain.input_names[k]: x})
        self.seconds = time.perf_counter() - start
        if not self.chain.on_host:  # the input went to the device, both outputs came back
            self.copies.images += k == 0
            self.copies.feature_maps += (k > 0) + 1
            self.copies.logits += 1


class ChainedSession:
    """The chain as a prefix (`exit=k`: image -> logits_k) or the full graph (`exit=None`: image ->
    every exit's logits), answering `get_inputs()` and `run(None, feeds)` like an onnxruntime session."""

    def __init__(self, chain: Chain, exit: int | None = None) -> None:
        self._chain, self._last = chain, exit or len(chain)
        self._all = exit is None

    def get_inputs(self) -> list[InputArg]:
        return [InputArg(names.IMAGE)]

    def run(self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        images = feeds[names.IMAGE]
        step = self._chain.max_rows or max(1, len(images))
        chunks = [self._chain.run_through(images[i:i + step], self._last) for i in range(0, max(1, len(images)), step)]
        logits = chunks[0] if len(chunks) == 1 else [np.concatenate(parts) for parts in zip(*chunks)]
        return logits if self._all else [logits[-1]]
