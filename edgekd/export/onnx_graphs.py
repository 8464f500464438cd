"""The ONNX graphs of a multi-exit network: one per segment, one per prefix, and the full net, named
as `edgekd.bundle.names` says. Chained, the segments are the early-exit runtime's path: it runs
segment k only on the samples still undecided. Every graph has a dynamic batch axis. Export uses the TorchScript tracer; a tracer warning (a
Python branch or a value that depends on the input data) fails the export, because the graph
would silently compute something else for other inputs.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from edgekd.bundle import names
from edgekd.errors import EdgekdError
from edgekd.models import MultiExitNet


class Prefix(nn.Module):
    """Image -> logits of exit `k` (0-based) through trunks 0..k."""

    def __init__(self, net: MultiExitNet, k: int) -> None:
        super().__init__()
        self.trunks, self.head = nn.Sequential(*net.trunks[: k + 1]), net.heads[k]

    def forward(self, image: Tensor) -> Tensor:
        return self.head(self.trunks(image))


class Full(nn.Module):
    """Image -> the logits of every exit."""

    def __init__(self, net: MultiExitNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.net(image).logits)


@dataclass
class GraphSpec:
    """One graph of the bundle: the module, its input's shape (no batch) and its tensor names."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    inputs: list[str]
    outputs: list[str]

    @property
    def file(self) -> str:
        return names.graph_file(self.name)


def graph_specs(net: MultiExitNet) -> list[GraphSpec]:
    """Every graph a bundle holds, in order: segments, prefixes, full."""
    image = (3, net.image_size, net.image_size)
    shapes = feature_shapes(net)
    specs = []
    for k, segment in enumerate(net.segments(), start=1):
        input_shape = image if k == 1 else shapes[k - 2]
        specs.append(GraphSpec(names.segment(k), segment, input_shape, [names.segment_input(k)], names.segment_outputs(k)))
    for k in range(1, net.num_exits + 1):
        specs.append(GraphSpec(names.prefix(k), Prefix(net, k - 1), image, [names.IMAGE], [names.logits(k)]))
    specs.append(GraphSpec(names.FULL, Full(net), image, [names.IMAGE], [names.logits(k) for k in range(1, net.num_exits + 1)]))
    return specs


@torch.no_grad()
def feature_shapes(net: MultiExitNet) -> list[tuple[int, ...]]:
    """(C, H, W) of the feature map each segment hands to the next."""
    out = net.eval()(torch.zeros(1, 3, net.image_size, net.image_size))
    return [tuple(f.shape[1:]) for f in out.features]


def export_graph(spec: GraphSpec, path: Path, opset: int, example: Tensor) -> None:
    """Trace `spec.module` on `example` into `path` (dynamic batch); tracer warnings are errors."""
    names = spec.inputs + spec.outputs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.onnx.export(spec.module.eval(), (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=spec.inputs, output_names=spec.outputs, dynamic_axes={n: {0: "batch"} for n in names},
                          do_constant_folding=True)
    tracer = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if tracer:
        raise EdgekdError(f"exporting {spec.name}: the tracer found input-dependent Python control flow or values, so the "
                          f"graph would not be correct for other inputs: {tracer[0]}")
