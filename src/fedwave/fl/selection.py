"""Which UEs take part in a round: selection rules in a registry by name (``fl.selection``).

A rule is a function ``rule(ctx) -> list[int]`` of a :class:`SelectionContext`: the round, the UEs
available (sorted ids), how many to pick, a random generator seeded from (seed, "select", round, call),
and each UE's history. It returns at most ``ctx.count`` distinct ids from ``ctx.available``; the driver
checks that. Rules:

* ``random``: ``count`` UEs uniformly without replacement (McMahan et al.'s C-fraction sampling).
* ``round_robin``: the UEs taken least recently, ties by id, so with every UE available the selection
  cycles through the ids in order.
* ``age``: the UEs taken least recently (never counts as oldest), ties broken at random: the "age of
  update" rule of wireless-FL scheduling.

``fl.sampling: poisson`` (each UE joins with probability q, what DP accounting assumes) is a sampling
scheme of its own and needs ``random``. Bring your own rule with ``fedwave.register_selection``, an import
path (``fl.selection=mypkg.sched:rule``) or an entry point of group ``fedwave.selections``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from fedwave.errors import ConfigError


@dataclass(frozen=True)
class SelectionContext:
    """What a selection rule may look at.

    Attributes:
        round: the round being opened (0-based).
        available: the UEs that may be picked, sorted ids.
        count: how many to pick (at most).
        rng: this call's generator (seeded from the run seed, the round and the call number).
        last_selected: UE -> the last round it was picked in (absent: never picked).
        times_selected: UE -> how many times it was picked so far.
    """

    round: int
    available: list[int]
    count: int
    rng: np.random.Generator
    last_selected: Mapping[int, int]
    times_selected: Mapping[int, int]


SelectionRule = Callable[[SelectionContext], list[int]]


def _random(ctx: SelectionContext) -> list[int]:
    k = min(ctx.count, len(ctx.available))
    return sorted(int(ctx.available[i]) for i in ctx.rng.choice(len(ctx.available), size=k, replace=False))


def _round_robin(ctx: SelectionContext) -> list[int]:
    order = sorted(ctx.available, key=lambda u: (ctx.last_selected.get(u, -1), u))
    return sorted(order[: ctx.count])


def _age(ctx: SelectionContext) -> list[int]:
    ties = ctx.rng.permutation(len(ctx.available))
    order = sorted(
        range(len(ctx.available)), key=lambda i: (ctx.last_selected.get(ctx.available[i], -1), ties[i])
    )
    return sorted(int(ctx.available[i]) for i in order[: ctx.count])


SELECTIONS: dict[str, SelectionRule] = {"random": _random, "round_robin": _round_robin, "age": _age}


def get_selection(name: str) -> SelectionRule:
    """The rule called ``name``: built in, registered, an import path or an entry point.

    Raises:
        ConfigError: no such rule (the message lists the built-in ones).
    """
    key = str(name).strip()
    if key in SELECTIONS:
        return SELECTIONS[key]
    from fedwave.plugins import find

    obj = find("selections", key)
    if obj is None:
        raise ConfigError(
            f"unknown selection rule {name!r}; choose one of {', '.join(SELECTIONS)}, a rule registered "
            "with fedwave.register_selection, or an import path package.module:function"
        )
    if not callable(obj):
        raise ConfigError(f"selection rule {name!r} is {type(obj).__name__}, not a function rule(ctx)")
    rule: SelectionRule = obj
    return rule


def checked(rule_name: str, picked: object, ctx: SelectionContext) -> list[int]:
    """``picked`` as a list of distinct available ids, at most ``ctx.count`` of them.

    Raises:
        ConfigError: the rule returned something else (names the rule and what was wrong).
    """
    try:
        ids = [int(u) for u in picked]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ConfigError(f"selection rule {rule_name!r} returned {picked!r}, not a list of UE ids") from None
    allowed = set(ctx.available)
    if len(set(ids)) != len(ids) or not set(ids) <= allowed or len(ids) > ctx.count:
        raise ConfigError(
            f"selection rule {rule_name!r} in round {ctx.round} returned {ids}: it must return at most "
            f"{ctx.count} distinct ids among the available UEs {ctx.available}"
        )
    return sorted(ids)
