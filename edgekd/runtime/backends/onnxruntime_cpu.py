"""The `cpu` backend: onnxruntime's CPU provider, with the segments handing feature maps on in
onnxruntime's blocked layout where that is safe and pays (`edgekd.runtime.layout`).

A batch whose largest feature map handed between segments reaches `PARALLEL_COPY_BYTES` gets the
blocked segments that copy it out on every thread; smaller ones the segments where onnxruntime copies
it, on one thread, inside the last convolution. Where the switch pays, on both CIFAR bundles:
benchmarks/export_latency.py BUNDLE --pool shared --chains serial parallel --batches 1 2 4 8 16.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from edgekd.bundle import names
from edgekd.runtime.backends.base import OnnxruntimeBackend
from edgekd.runtime.chain import SegmentChain, chains_disagree
from edgekd.runtime.single_call import NotJoinable, SingleCall, single_call_disagrees, single_call_graph

log = logging.getLogger("edgekd.runtime")
PARALLEL_COPY_BYTES = 512 * 1024


class CpuBackend(OnnxruntimeBackend):
    name = "cpu"

    def __init__(self, *args: Any, blocked_handoff: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blocked_handoff = blocked_handoff
        self._blocked_chains: dict[bool, SegmentChain] = {}  # by parallel_copy
        self._blocked_graphs: dict[bool, list[bytes]] = {}  # the blocked chains' segment graphs, where they serve
        self._single_calls: dict[tuple[str, tuple[float, ...], bool], SingleCall | None] = {}
        self._handoff_bytes = max((4 * int(np.prod(e.feature_shape)) for e in self.manifest.exits[:-1]), default=0)

    def chain_for(self, rows: int) -> SegmentChain:
        """`blocked_chain`, copying feature maps out on every thread once a batch's largest reaches
        `PARALLEL_COPY_BYTES`; `chain` where the blocked hand-off is switched off."""
        if not self.blocked_handoff:
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
                import onnxruntime as ort

                log.debug("%s: segments hand feature maps on in NCHW%s (onnxruntime %s): %s", self.bundle,
                          " for large batches" if parallel_copy else "", ort.__version__, reason)
            self._blocked_chains[parallel_copy] = blocked or self.chain
        return self._blocked_chains[parallel_copy]

    def _probed_blocked_chain(self, parallel_copy: bool) -> tuple[SegmentChain | None, str]:
        """The blocked chain if it builds and agrees with `chain`; else None and why not."""
        from edgekd.runtime.layout import blocked_handoff
        from edgekd.runtime.sessions import make_session, session_options

        paths = [self.graph_path(s) for s in names.segments(self.manifest.num_exits)]
        try:
            graphs = blocked_handoff(paths, lambda: session_options(self.threads, share_pool=self.shared_threads),
                                     parallel_copy=parallel_copy)
            if graphs is None:
                return None, "onnxruntime's CPU optimizer keeps no segment boundary of this bundle in its blocked layout"
            blocked = SegmentChain.for_bundle(
                [make_session(g, self.providers, self.threads, share_pool=self.shared_threads, optimized=True) for g in graphs],
                self.manifest)
            disagreement = chains_disagree(blocked, self.chain, self.manifest.input.shape)
        except Exception as err:  # noqa: BLE001 - a changed internal rewrite may fail anywhere; the NCHW chain stays right
            return None, f"the blocked segments failed to build or run ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        if disagreement:
            return None, disagreement
        self._blocked_graphs[parallel_copy] = graphs
        return blocked, ""

    def single_call(self, policy: str, score: Callable[[np.ndarray], np.ndarray],
                    temperatures: Sequence[float], final_ensemble: bool = False) -> SingleCall | None:
        """The segments joined into one batch-1 early-exit graph, built on first use for each policy,
        temperatures and final answer: from the segments batch 1 runs on, so feature maps stay in the blocked layout between
        exits where the chain's do (`layout`). It must build and give the chain's answers at every exit on a probe image, else None
        (the chain serves; one debug line on the `edgekd.runtime` logger says why)."""
        key = (policy, tuple(float(t) for t in temperatures), final_ensemble)
        if key not in self._single_calls:
            call, reason = self._probed_single_call(policy, score, temperatures, final_ensemble)
            if call is None:
                log.debug("%s: batch-1 early exit runs the segment chain, not one call: %s", self.bundle, reason)
            self._single_calls[key] = call
        return self._single_calls[key]

    def _probed_single_call(self, policy: str, score: Callable[[np.ndarray], np.ndarray],
                            temperatures: Sequence[float], final_ensemble: bool) -> tuple[SingleCall | None, str]:
        from edgekd.runtime.sessions import make_session

        blocked = self._blocked_graphs.get(False) if self.chain_for(1) is not self.chain else None
        segments = [onnx.load_from_string(g) for g in blocked] if blocked else \
            [onnx.load(str(self.graph_path(s))) for s in names.segments(self.manifest.num_exits)]
        try:
            graph = single_call_graph(segments, policy, temperatures, self.manifest.input.shape, len(self.manifest.classes),
                                      final_ensemble)
        except NotJoinable as err:
            return None, str(err)
        try:
            call = SingleCall(make_session(graph.SerializeToString(), self.providers, self.threads,
                                           share_pool=self.shared_threads, optimized=blocked is not None),
                              self.manifest.num_exits)
            disagreement = single_call_disagrees(call, self.chain, score, temperatures, self.manifest.input.shape,
                                                 final_ensemble)
        except Exception as err:  # noqa: BLE001 - onnxruntime may refuse the joined graph anywhere; the chain stays right
            return None, f"the joined graph failed to build or run ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        return (None, disagreement) if disagreement else (call, "")


BACKEND = CpuBackend
