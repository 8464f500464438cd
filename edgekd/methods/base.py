"""The Method contract: a method turns student and teacher outputs into named loss terms.

Methods never own a loop: the trainer calls `loss` each step, sums the terms and logs each one.
A method is an `nn.Module`, so anything it adds that learns (feature adapters, regressors) is
trained and checkpointed with the student. Teachers are frozen and in eval mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from edgekd.models import ExitOutputs, MultiExitNet


@dataclass(frozen=True)
class Trainable:
    """Which trunks and heads (0-based exit indices) train in an epoch. The trainer freezes the
    others and keeps their BatchNorm in eval mode, so frozen running statistics do not drift."""

    trunks: frozenset[int]
    heads: frozenset[int]

    @classmethod
    def first_exits(cls, count: int) -> "Trainable":
        """Trunks and heads of the `count` shallowest exits."""
        return cls(frozenset(range(count)), frozenset(range(count)))


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Method(nn.Module):
    """Subclass, set `Params` (a pydantic model of the recipe's `method:` keys) and teacher bounds,
    and implement `loss`."""

    Params: ClassVar[type[BaseModel]] = NoParams
    min_teachers: ClassVar[int] = 0
    max_teachers: ClassVar[int | None] = 0
    # False where `loss` reads only the teachers' logits, never their features: then the teachers'
    # logits can be computed once on fixed views (train.teacher_cache_views).
    reads_teacher_features: ClassVar[bool] = True
    # True where `loss` reads the student's stage features (a student without them is refused).
    reads_student_features: ClassVar[bool] = False

    @classmethod
    def features_read(cls, params: BaseModel) -> tuple[bool, bool]:
        """(teachers' features, student's features) that `loss` reads with these parameters."""
        return cls.reads_teacher_features, cls.reads_student_features

    def __init__(self, params: BaseModel, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__()
        self.params = params

    def trainable(self, epoch: int, total_epochs: int) -> Trainable | None:
        """What trains in `epoch` (1-based); None: the whole student trains."""
        return None

    def loss(
        self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *, epoch: int, step: int
    ) -> dict[str, Tensor]:
        """Weighted loss terms for one batch; the trainer minimises their sum. `epoch` counts from 1."""
        raise NotImplementedError
