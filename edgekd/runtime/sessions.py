"""onnxruntime sessions for a bundle's graphs (the onnxruntime backends' shared part): thread settings
that let a chain of per-segment sessions share the cores instead of fighting over them.

Two thread set-ups (benchmarks/export_latency.py measures them against onnxruntime's default):
- default: each session its own pool of `threads` intra-op threads (all cores by default) that spins
  while a run lasts (no wake-up between kernels) and stops when it returns, so a finished
  session's threads do not spin against the next segment of the chain;
- `shared_threads=True`: one pool for every session of the process, which is faster still (no
  pool to wake per call). onnxruntime then refuses sessions with their own pools anywhere in the
  process, so edgekd's own commands (predict, calibrate, bench, demo) use it and the Python API
  leaves it opt-in.

Sharing a pool goes through `onnxruntime.capi._pybind_state`, which is not onnxruntime's public API:
`shared_pool` probes it (the setter exists, takes the sizes, and a session on the shared pool runs) before
the first session, and where the probe fails every session gets a pool of its own, with one debug line
on the `edgekd.runtime` logger saying why.
"""
from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


log = logging.getLogger("edgekd.runtime")

def available_providers() -> list[str]:
    """The execution providers this onnxruntime build has."""
    return list(ort.get_available_providers())


_shared_pool: dict[str, bool] = {}  # "works": the probe's verdict, once per process


def shared_pool(threads: int) -> bool:
    """Create the process-wide thread pool once, where the probe shows onnxruntime can share one; False
    (and one debug line) where it cannot."""
    if "works" not in _shared_pool:
        reason = _share_pool(threads)
        if reason:
            log.debug("onnxruntime %s cannot share one thread pool (%s): every session gets a pool of its own",
                      ort.__version__, reason)
        _shared_pool["works"] = reason is None
    return _shared_pool["works"]


def _share_pool(threads: int) -> str | None:
    """Set up the shared pool and run a session on it; why that failed, or None."""
    try:
        internal = importlib.import_module("onnxruntime.capi._pybind_state")
    except ImportError as err:
        return f"no onnxruntime.capi._pybind_state: {err}"
    setter = getattr(internal, "set_global_thread_pool_sizes", None)
    if setter is None:
        return "onnxruntime.capi._pybind_state has no set_global_thread_pool_sizes"
    try:
        setter(threads, 1)
        options = ort.SessionOptions()
        options.use_per_session_threads = False
        options.log_severity_level = 3
        session = ort.InferenceSession(_relu_graph(), options, providers=["CPUExecutionProvider"])
        x = np.array([[-1.0, 2.0]], np.float32)
        (y,) = session.run(None, {"x": x})
    except Exception as err:  # noqa: BLE001 - whatever a changed internal raises means: do not use it
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if not np.array_equal(y, np.maximum(x, 0)):
        return "a session on the shared pool computed a wrong result"
    return None


def _relu_graph() -> bytes:
    """The smallest graph a probe can run: y = relu(x)."""
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 2])  # noqa: E731
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [value("x")], [value("y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7).SerializeToString()


def session_options(threads: int | None, *, share_pool: bool = False) -> ort.SessionOptions:
    """Sequential execution on `threads` intra-op threads (all cores by default): the shared pool, or a
    pool of the session's own that spins only while a run lasts."""
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    count = threads or os.cpu_count() or 1
    if share_pool and shared_pool(count):
        options.use_per_session_threads = False
    else:
        options.intra_op_num_threads = count
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def make_session(model: Path | bytes, providers: list[Any], threads: int | None, *, share_pool: bool = False,
                 optimized: bool = False) -> ort.InferenceSession:
    """A session for a graph file, or for a serialized graph; `optimized`: the graph was already optimized
    for this machine (`layout.blocked_handoff`), so onnxruntime must leave it as it is."""
    options = session_options(threads, share_pool=share_pool)
    if optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=providers)
