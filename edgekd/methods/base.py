"""The Method contract: a method turns student and teacher outputs into named loss terms.

Methods never own a loop: the trainer asks a method for its `phases` once, freezes what each
phase does not train, restarts the learning-rate schedule at each phase, and calls `loss` each
step with the phase's `Trainable` plan. A method holds no per-epoch state: what `loss` needs to
know about the epoch comes in through its arguments.

A method is an `nn.Module`, so anything it adds that learns (feature adapters, regressors) is
trained and checkpointed with the student. Teachers are frozen and in eval mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, Optional, TypeVar

from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from edgekd.models import ExitOutputs, MultiExitNet


@dataclass(frozen=True)
class Trainable:
    """Which trunks and heads (0-based exit indices) train in a phase. The trainer freezes the
    others and keeps their BatchNorm in eval mode, so frozen running statistics do not drift.
    `stem` overrides trunk 1 for the backbone's stem where it has one (`MultiExitNet.stem`): True
    trains it even with trunk 1 frozen, False freezes it while the rest of trunk 1 trains, None
    (default) lets it follow trunk 1."""

    trunks: frozenset[int]
    heads: frozenset[int]
    stem: Optional[bool] = None

    @classmethod
    def first_exits(cls, count: int) -> "Trainable":
        """Trunks and heads of the `count` shallowest exits."""
        return cls(frozenset(range(count)), frozenset(range(count)))


@dataclass(frozen=True)
class Phase:
    """`epochs` consecutive epochs that train what `trainable` says."""

    epochs: int
    trainable: Trainable


def equal_phases(total_epochs: int, count: int) -> list[int]:
    """`total_epochs` split into `count` consecutive phases as evenly as possible: 10 epochs in 4
    phases are 2, 3, 2, 3. With fewer epochs than phases the earliest phases get 0 epochs."""
    ends = [(k + 1) * total_epochs // count for k in range(count)]
    return [end - start for start, end in zip([0] + ends[:-1], ends)]


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=BaseModel)


class Method(nn.Module, Generic[P]):
    """Subclass as `Method[MyParams]`, set `Params = MyParams` (a pydantic model of the recipe's
    `method:` keys) and teacher bounds, and implement `loss`; `phases` where parts train in turns."""

    Params: ClassVar[type[BaseModel]] = NoParams
    min_teachers: ClassVar[int] = 0
    max_teachers: ClassVar[int | None] = 0
    # False where `loss` reads only the teachers' logits, never their features: then the teachers'
    # logits can be computed once on fixed views (train.teacher_cache_views).
    reads_teacher_features: ClassVar[bool] = True
    # True where `loss` reads the student's stage features (a student without them is refused).
    reads_student_features: ClassVar[bool] = False

    @classmethod
    def features_read(cls, params: P) -> tuple[bool, bool]:
        """(teachers' features, student's features) that `loss` reads with these parameters."""
        return cls.reads_teacher_features, cls.reads_student_features

    def __init__(self, params: P, student: MultiExitNet, teachers: list[MultiExitNet]) -> None:
        super().__init__()
        self.params: P = params
        self.num_exits = student.num_exits

    def everything(self) -> Trainable:
        """The plan in which the whole student trains."""
        return Trainable.first_exits(self.num_exits)

    def phases(self, total_epochs: int) -> list[Phase]:
        """The training plan, phase by phase, summing to `total_epochs`; by default one phase in
        which the whole student trains."""
        return [Phase(total_epochs, self.everything())]

    def loss(
        self, student_out: ExitOutputs, teacher_outs: list[ExitOutputs], target: Tensor, *,
        epoch: int, step: int, plan: Trainable,
    ) -> dict[str, Tensor]:
        """Weighted loss terms for one batch; the trainer minimises their sum. `epoch` counts from 1;
        `plan` is what trains in this epoch's phase."""
        raise NotImplementedError
