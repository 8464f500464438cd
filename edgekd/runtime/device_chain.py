"""A segment chain whose feature maps stay in the memory of the device that computes them.

On a GPU, `SegmentChain`'s plain `run` would copy every feature map to the host and back, with a
synchronisation each way, at every segment. `DeviceChain` keeps them where they were written: each
segment's feature map stays a device buffer that the next segment reads, the samples that left are
dropped on the device by the row-gathering segments (`edgekd.bundle.row_gather`), and only the images
(in), the kept rows' indices (in, one small int64 array a compaction) and every exit's logits (out, to
score the exit) cross between host and device. `HostCopies` counts them per batch.

What runs the segments is a `SegmentRunner`: `OrtDeviceRunner` here (onnxruntime sessions through
IOBinding with device OrtValues: the CUDA and TensorRT providers), or the native TensorRT engines'
runner (`backends.tensorrt_engines`). The bookkeeping above is the same for both, and on onnxruntime's
CPU provider the same code runs with host OrtValues, which is how it is tested without a GPU.
"""
from __future__ import annotations

import time
from typing import Any, Protocol, Sequence

import numpy as np

from edgekd.bundle import names
from edgekd.runtime.chain import HostCopies


class SegmentRunner(Protocol):
    """Runs segment k (0-based) on a device: the first on host images, the others on the previous
    segment's device feature map, gathered to `rows` first where `rows` is given."""

    segments: int
    gathers_every_segment: bool  # segments after the first always take `rows` (all of them where none left)
    max_rows: int | None  # the largest batch it runs (None: any)

    def run(self, k: int, source: Any, rows: np.ndarray | None) -> tuple[Any, np.ndarray]:
        """(the feature map, still on the device; the exit's logits on the host)."""
        ...


class DeviceChain:
    """The early-exit chain over a `SegmentRunner`: `start(images)` runs the first segment."""

    def __init__(self, runner: SegmentRunner) -> None:
        self.runner = runner

    def __len__(self) -> int:
        return self.runner.segments

    @property
    def max_rows(self) -> int | None:
        return self.runner.max_rows

    def start(self, images: np.ndarray) -> "DevicePass":
        return DevicePass(self, np.ascontiguousarray(images, np.float32))

    def run_through(self, images: np.ndarray, exits: int) -> list[np.ndarray]:
        """The logits of exits 1..`exits` for every image."""
        step = self.start(images)
        logits = [step.logits]
        while step.segment < exits - 1:
            step.advance()
            logits.append(step.logits)
        return logits


class DevicePass:
    """One batch on its way through a `DeviceChain`: `logits` and `seconds` of the segment just run
    (`segment`, 0-based), `rows` still running, `copies` so far; `advance(keep)` runs the next segment
    on every sample or on the kept ones."""

    def __init__(self, chain: DeviceChain, images: np.ndarray) -> None:
        self.runner, self.segment, self.rows = chain.runner, 0, len(images)
        self.copies = HostCopies(images=1)
        self._run(images, None)

    def advance(self, keep: np.ndarray | None = None) -> None:
        """Run the next segment on the samples where `keep` is True (all of them when None)."""
        self.segment += 1
        rows = None
        if keep is not None:
            rows = np.flatnonzero(keep)
            self.rows = len(rows)
        elif self.runner.gathers_every_segment:
            rows = np.arange(self.rows)
        self._run(self._feature, rows)

    def _run(self, source: Any, rows: np.ndarray | None) -> None:
        start = time.perf_counter()
        self._feature, self.logits = self.runner.run(self.segment, source, rows)
        self.seconds = time.perf_counter() - start
        self.copies.logits += 1
        self.copies.rows += rows is not None


class OrtDeviceRunner:
    """Segment sessions of onnxruntime bound with IOBinding: feature maps as OrtValues on `device`
    ("cuda", or "cpu" for the same path on the host), allocated by onnxruntime and handed from one
    session to the next; the images, `rows` and logits through host memory."""

    gathers_every_segment = False
    max_rows = None

    def __init__(self, segments: Sequence[Any], gathering: Sequence[Any], outputs: Sequence[Sequence[str]],
                 device: str = "cuda", device_id: int = 0) -> None:
        """`segments`: sessions of segment_1..K; `gathering`: of the row-gathering segments 2..K;
        `outputs`: each segment's (feature, logits) output names."""
        if len(gathering) != len(segments) - 1:
            raise ValueError(f"{len(segments)} segments need {len(segments) - 1} row-gathering ones, got {len(gathering)}")
        self.plain, self.gathering = list(segments), list(gathering)
        self.segments = len(self.plain)
        self.outputs = [list(o) for o in outputs]
        self.device, self.device_id = device, device_id
        self._inputs = [s.get_inputs()[0].name for s in self.plain]

    def run(self, k: int, source: Any, rows: np.ndarray | None) -> tuple[Any, np.ndarray]:
        session = self.plain[k] if rows is None else self.gathering[k - 1]
        binding = session.io_binding()
        if k == 0:
            binding.bind_cpu_input(names.IMAGE, source)
        else:
            binding.bind_ortvalue_input(self._inputs[k], source)
        if rows is not None:
            binding.bind_cpu_input(names.ROWS, rows.astype(np.int64, copy=False))
        feature, logits = self.outputs[k]
        binding.bind_output(feature, self.device, self.device_id)
        binding.bind_output(logits, "cpu")
        session.run_with_iobinding(binding)
        feature_value, logits_value = binding.get_outputs()
        return feature_value, logits_value.numpy()
