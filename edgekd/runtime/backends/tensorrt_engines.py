"""The `tensorrt-engines` backend: the bundle's native TensorRT engines (`edgekd export BUNDLE --format
tensorrt`) as segment sessions.

`EngineSession` runs one segment engine and answers the two calls the runtime makes of an
onnxruntime session (`get_inputs()[0].name`, `run(None, feeds)`), so the early-exit loop is the same
on both. Only segments have engines; `chain.ChainedSession` composes them into the prefix and full
graphs (image -> logits of exit k, or of every exit). The engines' precision is the one they were
built with. Needs TensorRT and cuda-python on a CUDA
device (on a Jetson: JetPack's python3-libnvinfer and `pip install cuda-python`); no torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekd.bundle import names
from edgekd.errors import BadInput
from edgekd.runtime.backends.base import Backend
from edgekd.runtime.chain import ChainedSession, InputArg


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise BadInput("running TensorRT engines needs cuda-python: pip install 'edgekd[tensorrt]' "
                           "(or pip install cuda-python)") from None
    return cudart


def _tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise BadInput("running TensorRT engines needs TensorRT: on a Jetson it comes with JetPack (python3-libnvinfer); "
                       "elsewhere pip install 'edgekd[tensorrt]'. Without it, run the ONNX graphs (precision fp32 or int8)") from None
    return trt


def _check(result: Any) -> Any:
    """cuda-python returns (error, value...): raise on an error, return the value."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(f"CUDA call failed: {error}")
    return values[0] if len(values) == 1 else values


class EngineSession:
    """One TensorRT engine: host numpy in, host numpy out, device buffers grown as batches need."""

    def __init__(self, path: Path, outputs: Sequence[str]) -> None:
        """`outputs`: the segment's output names in the ONNX graph's order (feature, logits)."""
        trt, self._cudart = _tensorrt(), _cudart()
        if _check(self._cudart.cudaGetDeviceCount()) == 0:
            raise BadInput("no CUDA device is visible: TensorRT engines run on the GPU they were built on")
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise BadInput(f"{path} could not be loaded: engines only run on the GPU and TensorRT version that built them; "
                           f"rebuild here with `edgekd export BUNDLE --format tensorrt`")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = list(outputs)
        if sorted(self._outputs) != sorted(n for n in names if n not in self._inputs):
            raise BadInput(f"{path} does not match its segment graph (outputs {names}); rebuild the engines")
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        self._stream = _check(self._cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def get_inputs(self) -> list[InputArg]:
        return [InputArg(n) for n in self._inputs]

    def _device(self, name: str, nbytes: int) -> int:
        pointer, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                _check(self._cudart.cudaFree(pointer))
            pointer = _check(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (pointer, nbytes)
            self._context.set_tensor_address(name, pointer)
        return pointer

    def run(self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        copy_in, copy_out = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self._inputs:
            x = np.ascontiguousarray(feeds[name], dtype=self._dtypes[name])
            self._context.set_input_shape(name, x.shape)
            _check(self._cudart.cudaMemcpyAsync(self._device(name, x.nbytes), x.ctypes.data, x.nbytes, copy_in, self._stream))
        results = {}
        for name in self._outputs:
            results[name] = np.empty(tuple(self._context.get_tensor_shape(name)), self._dtypes[name])
            self._device(name, results[name].nbytes)
        if not self._context.execute_async_v3(self._stream):
            raise RuntimeError("TensorRT failed to run the engine; its log above says why")
        for name, out in results.items():
            _check(self._cudart.cudaMemcpyAsync(out.ctypes.data, self._buffers[name][0], out.nbytes, copy_out, self._stream))
        _check(self._cudart.cudaStreamSynchronize(self._stream))
        return [results[n] for n in (output_names or self._outputs)]

    def __del__(self) -> None:
        for pointer, _ in getattr(self, "_buffers", {}).values():
            self._cudart.cudaFree(pointer)


class EnginesBackend(Backend):
    name = "tensorrt-engines"

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
        return [f"TensorRT {self.manifest.tensorrt.version} engines ({self.precision})"]

    def make_session(self, graph: str) -> Any:
        """A native engine for segment_k; prefix_k and full chain the segment engines."""
        if names.is_segment(graph):
            return EngineSession(self.bundle / self.manifest.tensorrt.engines[graph], self.manifest.graphs[graph].outputs)
        return ChainedSession(self.chain, names.exit_of(graph))


BACKEND = EnginesBackend
