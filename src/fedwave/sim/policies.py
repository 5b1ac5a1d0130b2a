"""Round policies, in a registry by name: when does the BS close a round and aggregate?

| policy | the round ends when |
|---|---|
| ``sync`` | every selected UE's message has arrived or was lost |
| ``deadline`` | ``deadline_s`` after the round start (or earlier if everyone is done); later ones dropped |
| ``first_k`` | the ``k``-th message arrives (over-selection); the others are dropped |
| ``async`` | buffered asynchronous: a step after every ``buffer_k`` arrivals (see :mod:`.asyncfl`) |

Messages count toward ``first_k`` and the deadline whether they carry an update or "no update" (skip).
Register a new policy with :func:`register_policy`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, ClassVar

import simpy

from fedwave.errors import ConfigError
from fedwave.sim.asyncfl import run_async
from fedwave.sim.protocol import Driver
from fedwave.sim.rounds import RoundState, run_round
from fedwave.sim.ue import Job

if TYPE_CHECKING:
    from fedwave.sim.clock import Clock
    from fedwave.sim.config import PolicyConfig


class Policy(ABC):
    """A round policy. ``requires`` names the ``policy.*`` config fields it cannot do without."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: PolicyConfig) -> None:
        self.cfg = cfg

    def check(self, num_ues: int, clients_per_round: int) -> None:
        """Raise :class:`ConfigError` if the policy cannot run with these numbers (default: it can)."""
        return None

    @abstractmethod
    def run(
        self,
        clock: Clock,
        driver: Driver,
        rounds: int,
        clients_per_round: int,
        start_round: int,
        t_start: float,
    ) -> float:
        """Run ``rounds`` rounds from ``t_start`` (s); return the final simulated time (s)."""


POLICIES: dict[str, type[Policy]] = {}


def register_policy(cls: type[Policy]) -> type[Policy]:
    """Class decorator adding a policy to :data:`POLICIES` under ``cls.name``."""
    if cls.name in POLICIES:
        raise ValueError(f"policy {cls.name!r} is already registered")
    POLICIES[cls.name] = cls
    return cls


def policy_class(name: str) -> type[Policy]:
    """The policy class called ``name``: registered, or a plug-in (import path ``package.module:Policy``
    or entry point; see :mod:`fedwave.plugins`).

    Raises:
        ConfigError: unknown name (listing the registered ones) or a plug-in that cannot be loaded.
    """
    if name in POLICIES:
        return POLICIES[name]
    from fedwave.plugins import find_policy

    cls: type[Policy] | None = find_policy(name)
    if cls is None:
        raise ConfigError(
            f"unknown policy {name!r}; choose one of {sorted(POLICIES)} or an import path "
            "package.module:Policy"
        )
    return cls


class RoundPolicy(Policy):
    """A synchronous family policy: rounds one after another, each closed by :meth:`closing`."""

    def run(
        self,
        clock: Clock,
        driver: Driver,
        rounds: int,
        clients_per_round: int,
        start_round: int,
        t_start: float,
    ) -> float:
        t = t_start
        for rnd in range(start_round, start_round + rounds):
            t, keep = run_round(clock, driver, self, rnd, clients_per_round, t)
            if not keep:
                break
        return t

    @abstractmethod
    def closing(self, env: simpy.Environment, state: RoundState) -> Generator[simpy.Event, Any, None]:
        """The BS's process for one round: returns when the round closes."""

    def counts(self, state: RoundState, job: Job) -> bool:
        """Whether a job whose upload ended before the simulation stopped counts for the round."""
        return True


@register_policy
class SyncPolicy(RoundPolicy):
    """Wait for every selected UE (arrived or lost)."""

    name = "sync"

    def closing(self, env: simpy.Environment, state: RoundState) -> Generator[simpy.Event, Any, None]:
        yield state.all_done


@register_policy
class DeadlinePolicy(RoundPolicy):
    """Close at ``deadline_s`` after the round start; messages arriving at or before it count."""

    name = "deadline"
    requires = ("deadline_s",)

    def closing(self, env: simpy.Environment, state: RoundState) -> Generator[simpy.Event, Any, None]:
        assert self.cfg.deadline_s is not None
        yield state.all_done | env.timeout(self.cfg.deadline_s)
        if not state.all_done.triggered:
            yield env.timeout(0)  # uploads ending exactly at the deadline still count

    def counts(self, state: RoundState, job: Job) -> bool:
        assert self.cfg.deadline_s is not None
        return job.event.t_upload_end <= state.t_start + self.cfg.deadline_s


@register_policy
class FirstKPolicy(RoundPolicy):
    """Close at the k-th delivered message (or when every UE is done, if fewer than k can arrive)."""

    name = "first_k"
    requires = ("k",)

    def check(self, num_ues: int, clients_per_round: int) -> None:
        assert self.cfg.k is not None
        if self.cfg.k > clients_per_round:
            raise ConfigError(
                f"policy.k={self.cfg.k} exceeds clients_per_round={clients_per_round}: "
                "first_k closes at the k-th of the selected UEs"
            )

    def closing(self, env: simpy.Environment, state: RoundState) -> Generator[simpy.Event, Any, None]:
        assert self.cfg.k is not None
        yield state.received_event(self.cfg.k) | state.all_done

    def counts(self, state: RoundState, job: Job) -> bool:
        assert self.cfg.k is not None
        return not job.delivered or job.rank < self.cfg.k


@register_policy
class AsyncPolicy(Policy):
    """Buffered asynchronous aggregation (FedBuff-like), weights 1/sqrt(1 + staleness)."""

    name = "async"

    def concurrency(self, clients_per_round: int) -> int:
        """UEs training at once: ``policy.concurrency``, or ``clients_per_round`` if unset."""
        return self.cfg.concurrency if self.cfg.concurrency is not None else clients_per_round

    def check(self, num_ues: int, clients_per_round: int) -> None:
        c = self.concurrency(clients_per_round)
        if c > num_ues:
            raise ConfigError(f"policy.concurrency={c} exceeds the number of UEs ({num_ues})")

    def run(
        self,
        clock: Clock,
        driver: Driver,
        rounds: int,
        clients_per_round: int,
        start_round: int,
        t_start: float,
    ) -> float:
        return run_async(
            clock,
            driver,
            buffer_k=self.cfg.buffer_k,
            concurrency=self.concurrency(clients_per_round),
            rounds=rounds,
            start_round=start_round,
            t_start=t_start,
        )
