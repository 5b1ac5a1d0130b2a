"""How client work is executed: the one seam between *what* a UE computes and *how* it is run.

An executor maps a function over client tasks and returns the results in task order:

- ``sequential``: one UE after another, in the calling process (the reference executor).
- ``batched``: when the work offers a vectorised form (:class:`Work` with ``many``), all tasks go to it
  at once — the FL driver trains the selected UEs that share a model version together with
  ``torch.func.vmap`` (:mod:`fedwave.engine.batched`; at most ``stack_limit(model)`` UEs per group, so a
  model of several MB per UE trains one UE after another), and runs the UEs that cannot be vectorised
  (DP-SGD users of models other than Linear/ReLU and convolution chains, local noise, data poisoning,
  dropout) one after another, saying so once in the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Work(Generic[T, R]):
    """A task function (``one``) with, optionally, its vectorised form over many tasks (``many``)."""

    one: Callable[[T], R]
    many: Callable[[Sequence[T]], list[R]] | None = None

    def __call__(self, task: T) -> R:
        return self.one(task)


class Executor(Protocol):
    """Runs ``fn`` on every task; results come back in task order."""

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]: ...


class SequentialExecutor:
    """One task after another in this process (deterministic, the reference executor)."""

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        return [fn(t) for t in tasks]


class BatchedExecutor:
    """All tasks through ``fn.many`` when ``fn`` is a :class:`Work` that has one; else sequential."""

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        if isinstance(fn, Work) and fn.many is not None:
            out: list[R] = fn.many(tasks)
            return out
        return [fn(t) for t in tasks]


EXECUTORS: dict[str, Callable[[], Executor]] = {"sequential": SequentialExecutor, "batched": BatchedExecutor}


def make_executor(name: str) -> Executor:
    """The executor registered as ``name``."""
    return EXECUTORS[name]()
