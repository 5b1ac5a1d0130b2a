"""How a UE misbehaves: one registry of behaviours for faults (and, later, Byzantine attacks).

A behaviour turns the update a UE computed honestly into what it sends instead; it runs on the UE after
local training and before encoding, so a faulty message crosses the same codec and air as an honest
one. A behaviour marked ``silent`` sends nothing at all (the UE never answers).

Register a behaviour with :func:`register_behaviour`; faults name it in ``faults.kind``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

Update = list[torch.Tensor]


@dataclass(frozen=True)
class BehaviourContext:
    """What a behaviour may use: the round, the UE, its own generator and its parameters.

    Attributes:
        round: the round (async: the BS round at dispatch).
        ue: the UE id.
        rng: the behaviour's generator (stream (seed, "faults", round, ue)).
        scale: the factor of ``huge``.
        honest: the honest updates of the same dispatch (for attacks that need them; may be empty).
    """

    round: int
    ue: int
    rng: torch.Generator
    scale: float = 1e30
    honest: Sequence[Update] = field(default_factory=tuple)


@dataclass(frozen=True)
class Behaviour:
    """A named way to misbehave: ``apply(update, ctx)`` returns what is sent (ignored when ``silent``)."""

    name: str
    apply: Callable[[Update, BehaviourContext], Update]
    silent: bool = False
    description: str = ""


BEHAVIOURS: dict[str, Behaviour] = {}


def register_behaviour(behaviour: Behaviour) -> Behaviour:
    """Add ``behaviour`` to :data:`BEHAVIOURS` under its name."""
    if behaviour.name in BEHAVIOURS:
        raise ValueError(f"behaviour {behaviour.name!r} is already registered")
    BEHAVIOURS[behaviour.name] = behaviour
    return behaviour


def _fill(value: float) -> Callable[[Update, BehaviourContext], Update]:
    def apply(update: Update, ctx: BehaviourContext) -> Update:
        return [torch.full_like(t, value) for t in update]

    return apply


def _huge(update: Update, ctx: BehaviourContext) -> Update:
    return [t * ctx.scale for t in update]


def _same(update: Update, ctx: BehaviourContext) -> Update:
    return update


register_behaviour(Behaviour("nan", _fill(float("nan")), description="every value NaN"))
register_behaviour(Behaviour("inf", _fill(float("inf")), description="every value +Inf"))
register_behaviour(Behaviour("huge", _huge, description="the update times faults.scale (finite)"))
register_behaviour(Behaviour("zero", _fill(0.0), description="an all-zero update"))
register_behaviour(Behaviour("silent", _same, silent=True, description="never answers"))
