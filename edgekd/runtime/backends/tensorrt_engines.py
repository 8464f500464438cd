"""The `tensorrt-engines` backend: the bundle's native TensorRT engines (`edgekd export BUNDLE --format
tensorrt`), chained through device buffers.

`EngineRunner` is the `device_chain.SegmentRunner` of the engines: every engine's outputs have a
device buffer of `max_batch` rows, allocated once, and the next engine reads the feature map straight
from the previous engine's buffer; engines 2..K are row-gathering segments, so compaction happens on
the GPU and only the images (in), the kept rows' indices (in) and the logits (out) cross to the host,
all on one CUDA stream with one synchronisation per segment (its logits decide who leaves). The
prefix and full graphs are the same chain (`chain.ChainedSession`). Needs TensorRT and cuda-python on a
CUDA device (on a Jetson: JetPack's python3-libnvinfer and `pip install 'cuda-python>=12.6'`); no torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekd.bundle import names
from edgekd.errors import BadInput
from edgekd.runtime.backends.base import Backend
from edgekd.cuda_runtime import check, cudart, gpu_name, tensorrt
from edgekd.runtime.chain import Chain, ChainedSession
from edgekd.runtime.device_chain import DeviceChain


class EngineRunner:
    """The segment engines with their device buffers (see the module's docstring)."""

    gathers_every_segment = True

    def __init__(self, paths: Sequence[Path], max_batch: int) -> None:
        trt, self._cuda = tensorrt(), cudart()
        gpu_name()  # a clear error where no GPU is visible
        self.segments, self.max_rows = len(paths), max_batch
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._stream = check(self._cuda.cudaStreamCreate())
        self._allocations: list[int] = []
        self._engines, self._contexts, self._shapes, self._dtypes = [], [], [], []
        for k, path in enumerate(paths, start=1):
            engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise BadInput(f"{path} could not be loaded: engines only run on the GPU and TensorRT version that built "
                               f"them; rebuild here with `edgekd export BUNDLE --format tensorrt`")
            tensors = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            expected = [names.segment_input(k), *([names.ROWS] if k > 1 else []), *names.segment_outputs(k)]
            if sorted(tensors) != sorted(expected):
                raise BadInput(f"{path} has tensors {tensors}, not {expected}: it was built by another edgekd; rebuild the "
                               f"engines with `edgekd export BUNDLE --format tensorrt`")
            self._engines.append(engine)
            self._contexts.append(engine.create_execution_context())
            self._shapes.append({t: tuple(engine.get_tensor_shape(t))[1:] for t in tensors})
            self._dtypes.append({t: np.dtype(trt.nptype(engine.get_tensor_dtype(t))) for t in tensors})
        self._buffers: list[dict[str, int]] = []
        for k in range(self.segments):  # each engine after the first reads the buffer of the one before
            self._buffers.append(self._bind(k))

    def _malloc(self, shape: Sequence[int], dtype: np.dtype) -> int:
        pointer = check(self._cuda.cudaMalloc(max(1, int(np.prod(shape)) * dtype.itemsize)))
        self._allocations.append(pointer)
        return int(pointer)

    def _bind(self, k: int) -> dict[str, int]:
        """Device buffers of engine k (0-based): its outputs, its `rows`, the image for the first; its feature
        input is the previous engine's feature output."""
        context, shapes, dtypes = self._contexts[k], self._shapes[k], self._dtypes[k]
        feature, logits = names.segment_outputs(k + 1)
        source = names.segment_input(k + 1)
        buffers = {name: self._malloc((self.max_rows, *shapes[name]), dtypes[name]) for name in (feature, logits)}
        if k == 0:
            buffers[source] = self._malloc((self.max_rows, *shapes[source]), dtypes[source])
        else:
            buffers[source] = self._buffers[k - 1][source]
            buffers[names.ROWS] = self._malloc((self.max_rows,), dtypes[names.ROWS])
        for name, pointer in buffers.items():
            context.set_tensor_address(name, pointer)
        return buffers

    def run(self, k: int, source: Any, rows: np.ndarray | None) -> tuple[Any, np.ndarray]:
        """Engine k on the host images (k = 0) or on the previous engine's feature map of `source` rows,
        gathered to `rows`; returns (the row count now in this engine's feature buffer, the logits)."""
        context, buffers, dtypes = self._contexts[k], self._buffers[k], self._dtypes[k]
        to_device = self._cuda.cudaMemcpyKind.cudaMemcpyHostToDevice
        if k == 0:
            host = np.ascontiguousarray(source, dtype=dtypes[names.IMAGE])
            self.fits(len(host))
            context.set_input_shape(names.IMAGE, host.shape)
            check(self._cuda.cudaMemcpyAsync(buffers[names.IMAGE], host.ctypes.data, host.nbytes, to_device, self._stream))
        else:
            feature = names.segment_input(k + 1)
            context.set_input_shape(feature, (int(source), *self._shapes[k][feature]))
            host = np.ascontiguousarray(rows, dtype=dtypes[names.ROWS])
            context.set_input_shape(names.ROWS, host.shape)
            check(self._cuda.cudaMemcpyAsync(buffers[names.ROWS], host.ctypes.data, host.nbytes, to_device, self._stream))
        if not context.execute_async_v3(self._stream):
            raise RuntimeError("TensorRT failed to run the engine; its log above says why")
        logits_name = names.logits(k + 1)
        count = len(host)
        logits = np.empty((count, *self._shapes[k][logits_name]), dtypes[logits_name])
        check(self._cuda.cudaMemcpyAsync(logits.ctypes.data, buffers[logits_name], logits.nbytes,
                                         self._cuda.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream))
        check(self._cuda.cudaStreamSynchronize(self._stream))
        return count, logits.astype(np.float32, copy=False)

    def fits(self, rows: int) -> None:
        """BadInput where a batch of `rows` is larger than the engines' profiles."""
        if rows > self.max_rows:
            raise BadInput(f"a batch of {rows} is larger than the {self.max_rows} rows the engines were built for: split it, "
                           f"or rebuild with `edgekd export BUNDLE --format tensorrt --max-batch {rows}`")

    def __del__(self) -> None:
        for pointer in getattr(self, "_allocations", []):
            self._cuda.cudaFree(pointer)
        if getattr(self, "_stream", None) is not None:
            self._cuda.cudaStreamDestroy(self._stream)


class EnginesBackend(Backend):
    name = "tensorrt-engines"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._engine_chain: DeviceChain | None = None
        self._runner: EngineRunner

    def resolve_precision(self, precision: str | None) -> str:
        engines = self.manifest.tensorrt
        if engines is None:
            raise BadInput(f"{self.bundle} has no TensorRT engines; build them on this device with "
                           f"`edgekd export {self.bundle} --format tensorrt`")
        if precision not in (None, engines.precision):
            raise BadInput(f"{self.bundle}'s TensorRT engines were built in {engines.precision}, not {precision}; "
                           f"rebuild them, or leave precision unset")
        return engines.precision

    @property
    def providers(self) -> list[Any]:
        assert self.manifest.tensorrt is not None
        return [f"TensorRT {self.manifest.tensorrt.version} engines ({self.precision})"]

    @property
    def engine_chain(self) -> DeviceChain:
        """The engines chained through device buffers (the only way they run)."""
        if self._engine_chain is None:
            engines = self.manifest.tensorrt
            assert engines is not None
            graphs = [names.segment(1), *(names.rows_segment(k) for k in range(2, self.manifest.num_exits + 1))]
            missing = [g for g in graphs if g not in engines.engines]
            if missing:
                raise BadInput(f"{self.bundle}'s engines lack {', '.join(missing)}: they were built by an earlier edgekd, "
                               f"which copied feature maps to the host; rebuild them with `edgekd export {self.bundle} --format tensorrt`")
            self._runner = EngineRunner([self.bundle / engines.engines[g] for g in graphs], engines.max_batch)
            self._engine_chain = DeviceChain(self._runner)
        return self._engine_chain

    def chain_for(self, rows: int) -> Chain:
        chain = self.engine_chain
        self._runner.fits(rows)
        return chain

    def make_session(self, graph: str) -> Any:
        """prefix_k and full: the engine chain, run through exit k or every exit."""
        if names.is_segment(graph) or names.is_rows_segment(graph):
            raise BadInput(f"the TensorRT engines run as one chain on the GPU; {graph} has no session of its own "
                           f"(use predict, or the prefix and full graphs)")
        return ChainedSession(self.engine_chain, names.exit_of(graph))


BACKEND = EnginesBackend
