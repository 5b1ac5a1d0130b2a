"""How client work is executed: the one seam between *what* a UE computes and *how* it is run.

An executor maps a function over client tasks and returns the results in task order. Today fedwave has
``sequential`` (one UE after another, in the calling process); a batched or distributed executor slots in
here without touching users, server or clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn`` on every task; results come back in task order."""

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]: ...


class SequentialExecutor:
    """One task after another in this process (deterministic, the reference executor)."""

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        return [fn(t) for t in tasks]


EXECUTORS: dict[str, Callable[[], Executor]] = {"sequential": SequentialExecutor}


def make_executor(name: str) -> Executor:
    """The executor registered as ``name``."""
    return EXECUTORS[name]()
