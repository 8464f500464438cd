"""Initialise a smaller multi-exit net from a larger trained one by weight selection.

Xu et al., "Initializing Models with Larger Ones" (ICLR 2024): a student that starts from a subset of
a trained teacher's weights trains faster and ends better than one from random weights. The
selection is by position:
- depth: the first N blocks of each stage (a ResNet18 stage takes blocks 1-2 of the ResNet34 stage);
- width: the first channels of every tensor, the same indices in every layer, so residual sums
  and BatchNorm statistics stay aligned; kernels and the class count must be the same.

Both nets must share the block structure (the same parameter names inside each stage) and the number
of stages. Each student exit head is taken from the teacher's head after the same stage, where the
teacher has one; the others keep their fresh weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgekd.models.multi_exit import MultiExitNet


class SelectionError(ValueError):
    """The teacher's weights cannot be selected into the student (and why)."""


@dataclass(frozen=True)
class Selection:
    """What the selection took: tensors copied, and the student exits whose heads came from the teacher."""

    tensors: int
    heads_from_teacher: tuple[int, ...]


def _selected(name: str, mine: Tensor, theirs: Tensor) -> Tensor:
    if mine.ndim != theirs.ndim or mine.shape[2:] != theirs.shape[2:]:  # kernels differ: other blocks
        raise SelectionError(f"{name}: the student's {tuple(mine.shape)} and the teacher's {tuple(theirs.shape)} are not "
                             f"the same kind of layer; the student must be built from the same blocks")
    if any(m > t for m, t in zip(mine.shape, theirs.shape)):
        raise SelectionError(f"{name}: the student's {tuple(mine.shape)} is not a part of the teacher's {tuple(theirs.shape)}; "
                             f"the student may be at most as wide as the teacher")
    return theirs[tuple(slice(0, size) for size in mine.shape)]


def _copy_part(target: nn.Module, source: nn.Module, where: str) -> int:
    theirs = source.state_dict()
    selected = {}
    for name, tensor in target.state_dict().items():
        if name not in theirs:
            raise SelectionError(f"{where}: the teacher has no {name}; the student must be built from the same blocks "
                                 f"(e.g. resnet18 from resnet34, not from resnet50's bottlenecks)")
        selected[name] = _selected(f"{where}.{name}", tensor, theirs[name])
    target.load_state_dict(selected)
    return len(selected)


@torch.no_grad()
def select_weights(student: MultiExitNet, teacher: MultiExitNet) -> Selection:
    """Copy into `student` the first blocks and channels of each of `teacher`'s stages, and the heads
    of the exits they share; raises SelectionError, naming the part, where the nets do not fit."""
    mine, theirs = student.stage_modules, teacher.stage_modules
    if len(mine) != len(theirs):
        raise SelectionError(f"the teacher has {len(theirs)} stages and the student {len(mine)}; weight selection "
                             f"needs the same stages")
    if student.num_classes != teacher.num_classes:
        raise SelectionError(f"the teacher classifies {teacher.num_classes} classes and the student {student.num_classes}")
    if teacher.input_conversion is not None:
        raise SelectionError("the teacher's weights expect other image statistics than the student's data; "
                             "weight selection needs a teacher trained on the same normalisation")
    copied = sum(_copy_part(target, source, f"stage {i + 1}") for i, (target, source) in enumerate(zip(mine, theirs)))
    teacher_heads = dict(zip(teacher.exit_stages, teacher.heads))
    shared = []
    for exit_index, (stage, head) in enumerate(zip(student.exit_stages, student.heads), start=1):
        if stage in teacher_heads:
            copied += _copy_part(head, teacher_heads[stage], f"exit {exit_index} head")
            shared.append(exit_index)
    return Selection(tensors=copied, heads_from_teacher=tuple(shared))
