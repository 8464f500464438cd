"""Cutting a library classifier into contiguous stages at its feature boundaries.

A model's direct children, with the first level of `nn.Sequential` containers flattened unless a boundary
names the container itself, are taken in registration order, as timm's `features_only` wrapper walks them
(`FeatureListNet`). The children up to
and including each boundary module form one stage; the children after the last boundary (final convs,
pooling, classifier) form the model's own head, the last exit. The cut is accepted only when running
the pieces in sequence reproduces the model's own forward (eval mode, seeded input): a model whose
forward does more than call its children in order (a ViT adds position embeddings and a class token)
is kept whole instead, as one stage without intermediate features.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from edgekd.models.backbone import Backbone

TOLERANCE = 1e-4  # relative to the logits' scale: float32 reassociation only


def ordered_children(model: nn.Module, keep: Sequence[str] = ()) -> list[tuple[str, nn.Module]]:
    """(dotted name, module) of the model's children in order, one level of Sequential flattened except
    for containers named in `keep` (a boundary may be a whole `layer1` or a flattened `blocks.2`)."""
    children = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential) and name not in keep:
            children += [(f"{name}.{sub}", module) for sub, module in child.named_children()]
        else:
            children.append((name, child))
    return children


def _sequential(named: Sequence[tuple[str, nn.Module]]) -> nn.Sequential:
    return nn.Sequential(OrderedDict((name.replace(".", "_"), module) for name, module in named))


def cut_at(model: nn.Module, boundaries: Sequence[str], *, flatten_head: bool = False) -> list[nn.Sequential] | None:
    """The stages and head of `model` cut after each module named in `boundaries` (in order), or None
    when a boundary is not a child. `flatten_head` puts a Flatten before the head's first Linear, for
    models whose forward flattens between pooling and classifier in code (torchvision's)."""
    children = ordered_children(model, keep=boundaries)
    names = [name for name, _ in children]
    if any(b not in names for b in boundaries):
        return None
    pieces, start = [], 0
    for boundary in boundaries:
        end = names.index(boundary) + 1
        if end <= start:
            return None
        pieces.append(_sequential(children[start:end]))
        start = end
    tail = children[start:]
    if flatten_head:
        first_linear = next((i for i, (_, m) in enumerate(tail) if isinstance(m, nn.Linear)), None)
        if first_linear is not None:
            tail = [*tail[:first_linear], ("flatten", nn.Flatten(1)), *tail[first_linear:]]
    pieces.append(_sequential(tail))
    return pieces


@torch.no_grad()
def reproduces_forward(model: nn.Module, pieces: Sequence[nn.Module], image_size: int) -> bool:
    """Whether running `pieces` in sequence gives `model(x)` on a seeded batch of two images."""
    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, image_size, image_size, generator=generator)
        expected = model(x)
        y = x
        for piece in pieces:
            y = piece(y)
        if not isinstance(expected, torch.Tensor) or not isinstance(y, torch.Tensor) or y.shape != expected.shape:
            return False
        scale = float(expected.abs().max()) or 1.0
        return float((y - expected).abs().max()) <= TOLERANCE * max(1.0, scale)
    except Exception:  # a piece that cannot run alone is a cut that does not work
        return False
    finally:
        model.train(was_training)


def staged_backbone(model: nn.Module, boundaries: Sequence[str], image_size: int, *,
                    flatten_head: bool = False) -> Backbone | None:
    """`model` as a Backbone cut at `boundaries`, or None when the cut does not reproduce its forward."""
    pieces = cut_at(model, boundaries, flatten_head=flatten_head)
    if pieces is None or not reproduces_forward(model, pieces, image_size):
        return None
    return Backbone(stages=list(pieces[:-1]), classifier=pieces[-1])


def whole_backbone(model: nn.Module) -> Backbone:
    """`model` as one stage whose output is already the logits (no intermediate features)."""
    return Backbone(stages=[model], classifier=nn.Identity())
