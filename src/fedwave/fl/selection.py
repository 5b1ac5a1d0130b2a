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

Channel-aware rules read the round's radio state, which the driver fills in from the clock's
:class:`~fedwave.sim.radio.RadioView` (synchronous policies only; a caller that gives none gets a
:class:`ConfigError`):

* ``best_channel``: the ``count`` UEs of highest estimated SNR this round (ties by id).
* ``proportional_fair``: the ``count`` UEs of largest ratio R_i / A_i of this round's achievable rate
  estimate R_i (on an equal share W / count of the band) to the UE's exponentially averaged served rate
  A_i. After each selection every UE's average moves as A_i <- (1 - 1/w) A_i + (1/w) R_i [i selected],
  w = ``fl.pf_window`` rounds (:func:`pf_update`); A_i starts at 0, so UEs never served come first
  (ties: the higher rate, then the id).
* ``deadline_aware``: only the UEs whose predicted round time (downlink + compute + upload on W /
  count) is within ``wireless.policy.deadline_s``; among those, ``count`` uniformly at random.

``fl.sampling: poisson`` (each UE joins with probability q, what DP accounting assumes) is a sampling
scheme of its own and needs ``random``. Bring your own rule with ``fedwave.register_selection``, an import
path (``fl.selection=mypkg.sched:rule``) or an entry point of group ``fedwave.selections``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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
        snr: per UE id, the estimated uplink SNR on the full band this round (linear); None: no radio.
        rate_bps: per UE id, the estimated achievable rate (bit/s) on W / count this round; None: no radio.
        pf_average: UE -> its exponentially averaged served rate (bit/s; absent: 0).
        predict_time_s: UE -> its predicted round time (s) on W / count; None: no radio.
        deadline_s: the round deadline (s), or None.
    """

    round: int
    available: list[int]
    count: int
    rng: np.random.Generator
    last_selected: Mapping[int, int]
    times_selected: Mapping[int, int]
    snr: Sequence[float] | None = None
    rate_bps: Sequence[float] | None = None
    pf_average: Mapping[int, float] = field(default_factory=dict)
    predict_time_s: Callable[[int], float] | None = None
    deadline_s: float | None = None


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


def _radio(ctx: SelectionContext, rule: str, what: str) -> None:
    if getattr(ctx, what) is None:
        raise ConfigError(
            f"selection rule {rule!r} needs the round's radio state ({what}), which only the simulated "
            "clock's synchronous rounds (policies sync, deadline, first_k) give to Driver.select; use "
            "another fl.selection with this caller"
        )


def _best_channel(ctx: SelectionContext) -> list[int]:
    _radio(ctx, "best_channel", "snr")
    assert ctx.snr is not None
    snr = ctx.snr
    order = sorted(ctx.available, key=lambda u: (-float(snr[u]), u))
    return sorted(order[: ctx.count])


def _proportional_fair(ctx: SelectionContext) -> list[int]:
    _radio(ctx, "proportional_fair", "rate_bps")
    assert ctx.rate_bps is not None
    rate = ctx.rate_bps

    def key(u: int) -> tuple[float, float, int]:
        avg = ctx.pf_average.get(u, 0.0)
        ratio = float(rate[u]) / avg if avg > 0 else np.inf
        return (-ratio, -float(rate[u]), u)

    return sorted(sorted(ctx.available, key=key)[: ctx.count])


def _deadline_aware(ctx: SelectionContext) -> list[int]:
    _radio(ctx, "deadline_aware", "predict_time_s")
    if ctx.deadline_s is None:
        raise ConfigError("selection rule 'deadline_aware' needs wireless.policy.deadline_s")
    assert ctx.predict_time_s is not None
    fits = [u for u in ctx.available if ctx.predict_time_s(u) <= ctx.deadline_s]
    k = min(ctx.count, len(fits))
    return sorted(int(fits[i]) for i in ctx.rng.choice(len(fits), size=k, replace=False)) if k else []


def pf_update(
    average: Mapping[int, float], rates: Sequence[float], chosen: Sequence[int], window: float
) -> dict[int, float]:
    """Proportional fair's averages after a selection: A_i <- (1 - 1/w) A_i + (1/w) R_i [i in chosen]
    for every UE i (index into ``rates``), w = ``window`` rounds (>= 1)."""
    picked = set(int(u) for u in chosen)
    keep = 1.0 - 1.0 / window
    return {
        u: keep * average.get(u, 0.0) + (float(rates[u]) / window if u in picked else 0.0)
        for u in range(len(rates))
    }


SELECTIONS: dict[str, SelectionRule] = {
    "random": _random,
    "round_robin": _round_robin,
    "age": _age,
    "best_channel": _best_channel,
    "proportional_fair": _proportional_fair,
    "deadline_aware": _deadline_aware,
}

#: The built-in rules that read the round's radio state (not usable by asynchronous rounds).
RADIO_RULES = frozenset({"best_channel", "proportional_fair", "deadline_aware"})


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
