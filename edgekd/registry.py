"""A small name -> builder registry shared by models, methods, datasets and exit policies.

Torch-free on purpose: the runtime's exit policies use it too.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from edgekd.errors import EdgekdError

T = TypeVar("T")


def closest(name: str, choices: list[str]) -> str | None:
    """The closest of `choices` to `name`, or None when nothing is close."""
    matches = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """'unknown model 'resnt18'; did you mean 'resnet18'? Known: ...' ."""
    hint = closest(name, known)
    did_you_mean = f"; did you mean '{hint}'?" if hint else "."
    return f"unknown {kind} '{name}'{did_you_mean} Known {kind}s: {', '.join(sorted(known))}"


class Registry(Generic[T]):
    """Maps names to objects registered with a decorator; duplicate names are refused."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise EdgekdError(unknown_name_message(self.kind, name, list(self._entries)))
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
