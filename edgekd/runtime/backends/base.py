"""The interface every runtime backend implements, and the onnxruntime base the three onnxruntime
backends share (they differ in their provider and its options).

A backend turns a graph name (`edgekd.bundle.names`) into something with `get_inputs()` and
`run(output_names, feeds)`, and gives the early-exit loop its chain for a batch size: the host
`SegmentChain`, or on a GPU the `DeviceChain` that keeps feature maps in device memory.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from edgekd.bundle import FP32, Manifest, names
from edgekd.bundle.backends import BACKENDS
from edgekd.bundle.manifest import PRECISION_FORMATS
from edgekd.errors import BadInput
from edgekd.runtime.chain import Chain, SegmentChain
from edgekd.runtime.device_chain import DeviceChain, OrtDeviceRunner

if TYPE_CHECKING:
    import numpy as np

    from edgekd.runtime.single_call import SingleCall


class Backend:
    """Sessions for one bundle's graphs at one precision; `chain_for(rows)` is the segment chain a batch runs on."""

    name = ""

    def __init__(self, bundle: Path, manifest: Manifest, *, precision: str | None, threads: int | None,
                 shared_threads: bool, provider_options: dict[str, Any]) -> None:
        self.bundle, self.manifest = bundle, manifest
        self.precision = self.resolve_precision(precision)
        self.threads, self.shared_threads, self.provider_options = threads, shared_threads, provider_options
        self._sessions: dict[str, Any] = {}
        self._chain: SegmentChain | None = None

    def resolve_precision(self, precision: str | None) -> str:
        """The precision this backend runs: `precision`, or its default; refused where the bundle lacks it."""
        precision = precision or FP32
        if precision not in self.manifest.precision_names:
            how = PRECISION_FORMATS.get(precision)
            raise BadInput(f"{self.bundle} has no {precision} graphs (it holds {', '.join(self.manifest.precision_names)})"
                           + (f"; export the run with --format {how}" if how else
                              f"; precisions: {', '.join([FP32, *PRECISION_FORMATS])}"))
        return precision

    @property
    def providers(self) -> list[Any]:
        """What runs the graphs, for reports."""
        return [self.name]

    def session(self, graph: str) -> Any:
        """The session of graph `graph` (segment_k, prefix_k, full), created on first use."""
        if graph not in self._sessions:
            self._sessions[graph] = self.make_session(graph)
        return self._sessions[graph]

    def make_session(self, graph: str) -> Any:
        raise NotImplementedError

    @property
    def chain(self) -> SegmentChain:
        """The segment sessions as one chain, feature maps in NCHW between them."""
        if self._chain is None:
            self._chain = SegmentChain.for_bundle([self.session(s) for s in names.segments(self.manifest.num_exits)],
                                                  self.manifest)
        return self._chain

    def chain_for(self, rows: int) -> Chain:
        """The chain a batch of `rows` runs on."""
        return self.chain

    def single_call(self, policy: str, score: "Callable[[np.ndarray], np.ndarray]",
                    temperatures: Sequence[float], final_ensemble: bool = False) -> "SingleCall | None":
        """The batch-1 early exit as one call (`runtime.single_call`) with exit policy `policy` (its score
        function `score`; `final_ensemble`: the final exit answers with every exit's ensemble), where this
        backend runs one; None: the early-exit loop runs the chain."""
        return None


class OnnxruntimeBackend(Backend):
    """The bundle's ONNX graphs on onnxruntime with `provider`, the one the backend table names for
    this backend (options: the defaults, then the user's)."""

    @property
    def provider(self) -> str:
        return str(BACKENDS[self.name].provider)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._device_chains: dict[str, DeviceChain] = {}  # by device type
        from edgekd.runtime.sessions import available_providers

        if self.provider not in available_providers():
            raise BadInput(f"onnxruntime's {self.provider} is not available here (available: {', '.join(available_providers())}). "
                           f"CUDA and TensorRT need onnxruntime-gpu (on a Jetson, the JetPack build of onnxruntime); "
                           f"`edgekd doctor` says what is installed")

    def default_options(self) -> dict[str, Any]:
        return {}

    @property
    def providers(self) -> list[Any]:
        main = (self.provider, {**self.default_options(), **self.provider_options})
        return [main if main[1] else self.provider] + ([] if self.provider == "CPUExecutionProvider" else ["CPUExecutionProvider"])

    def graph_path(self, graph: str) -> Path:
        return self.manifest.graph_path(self.bundle, graph, self.precision)

    def graph_model(self, graph: str) -> Path | bytes:
        """The file of graph `graph`, or for a row-gathering segment the graph derived from its segment's file."""
        if names.is_rows_segment(graph):
            from edgekd.bundle.row_gather import with_row_gather

            return with_row_gather(self.graph_path(names.segment(int(names.exit_of(graph) or 0)))).SerializeToString()
        return self.graph_path(graph)

    def providers_for(self, graph: str) -> list[Any]:
        """The providers (with options) of graph `graph`'s session."""
        return self.providers

    def make_session(self, graph: str) -> Any:
        from edgekd.runtime.sessions import make_session

        return make_session(self.graph_model(graph), self.providers_for(graph), self.threads, share_pool=self.shared_threads)

    def device_chain(self, device: str) -> DeviceChain:
        """The segments chained through IOBinding with feature maps as OrtValues on `device` ("cuda"; "cpu"
        runs the same path on the host), compacting with the row-gathering segments."""
        if device not in self._device_chains:
            k = self.manifest.num_exits
            segments = [self.session(s) for s in names.segments(k)]
            gathering = [self.session(names.rows_segment(j)) for j in range(2, k + 1)]
            outputs = [self.manifest.graphs[s].outputs for s in names.segments(k)]
            self._device_chains[device] = DeviceChain(OrtDeviceRunner(segments, gathering, outputs, device,
                                                                      int(self.provider_options.get("device_id", 0))))
        return self._device_chains[device]
