"""Planned epsilons and noise calibration, on top of an accountant (no mechanism runs here).

A *schedule* is what one participant (a UE at client level, a UE's data at sample level) goes through
per round: ``steps_per_round`` releases at sampling rate q. :func:`planned_epsilons` answers epsilon after
given rounds; :func:`calibrate_noise_multiplier` finds by bisection the smallest z whose epsilon after
the planned rounds is at most a target, and stops once it is within ``rtol`` below the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from fedwave.errors import ConfigError
from fedwave.privacy.dp.accountant import make_accountant


@dataclass(frozen=True)
class Schedule:
    """Releases of one participant per round: ``steps_per_round`` steps at sampling rate ``sample_rate``."""

    sample_rate: float
    steps_per_round: int


def planned_epsilons(
    accountant: str,
    noise_multiplier: float,
    schedule: Schedule,
    rounds: Sequence[int],
    delta: float,
) -> list[float]:
    """Epsilon at ``delta`` after each of ``rounds`` (increasing round numbers, 1-based) for one schedule.

    One accountant is stepped forward from one requested round to the next, so the cost is that of the
    accountant's queries (cheap for ``rdp``: its RDP is computed once per (q, z)).
    """
    acc = make_accountant(accountant)
    out: list[float] = []
    done = 0
    for r in rounds:
        if r < done:
            raise ValueError(f"rounds must be increasing, got {list(rounds)}")
        acc.step(noise_multiplier, schedule.sample_rate, (r - done) * schedule.steps_per_round)
        done = r
        out.append(acc.get_epsilon(delta))
    return out


def worst_epsilon(
    accountant: str, noise_multiplier: float, schedules: Sequence[Schedule], rounds: int, delta: float
) -> float:
    """The largest epsilon over ``schedules`` after ``rounds`` rounds."""
    return max(planned_epsilons(accountant, noise_multiplier, s, [rounds], delta)[0] for s in set(schedules))


def bisect_noise_multiplier(
    epsilon_of: Callable[[float], float], target_epsilon: float, *, rtol: float = 0.005, max_evals: int = 80
) -> float:
    """The z with ``target (1 - rtol) <= epsilon_of(z) <= target``, by bisection in log z.

    ``epsilon_of`` must decrease with z. The bracket starts at z = 1 and doubles (or halves) outwards
    until the target lies between its ends.

    Raises:
        ConfigError: if the target cannot be reached (naming ``dp.target_epsilon``).
    """
    if not target_epsilon > 0:
        raise ConfigError(f"dp.target_epsilon must be > 0, got {target_epsilon}")

    def close(e: float) -> bool:
        return target_epsilon * (1 - rtol) <= e <= target_epsilon

    z = 1.0
    e = epsilon_of(z)
    evals = 1
    if e > target_epsilon:  # too little noise: double z until the target is met
        lo = z
        while True:
            z *= 2.0
            if z > 1e6:
                raise ConfigError(
                    f"dp.target_epsilon={target_epsilon} is not reached even with z = 1e6; raise the "
                    "target or plan fewer rounds"
                )
            e = epsilon_of(z)
            evals += 1
            if e <= target_epsilon:
                hi = z
                break
            lo = z
    else:  # enough noise: halve z until the target is exceeded
        hi = z
        while True:
            if close(e) or z < 1e-6:  # below 1e-6 nothing is released (q = 0): any z will do
                return hi
            z /= 2.0
            e = epsilon_of(z)
            evals += 1
            if e > target_epsilon:
                lo = z
                break
            hi = z
    if close(e):
        return hi
    while evals < max_evals:
        mid = math.sqrt(lo * hi)
        e = epsilon_of(mid)
        evals += 1
        if e > target_epsilon:
            lo = mid
        else:
            hi = mid
            if close(e):
                return mid
    return hi


def calibrate_noise_multiplier(
    target_epsilon: float,
    delta: float,
    schedules: Sequence[Schedule],
    rounds: int,
    accountant: str = "rdp",
    *,
    rtol: float = 0.005,
) -> float:
    """The z for which the worst schedule ends at epsilon in [target (1 - rtol), target] after ``rounds``.

    Bisects on the schedule that is worst at z = 1, then checks every schedule at the result; if another
    one exceeds the target there, it bisects again on that one (each pass raises z, so this ends).
    """
    candidates = list(dict.fromkeys(schedules))
    if not candidates:
        raise ValueError("calibration needs at least one schedule")

    def eps(s: Schedule, z: float) -> float:
        return planned_epsilons(accountant, z, s, [rounds], delta)[0]

    at_one = [eps(s, 1.0) for s in candidates]
    worst = candidates[max(range(len(candidates)), key=lambda i: at_one[i])]
    for _ in range(len(candidates)):
        z = bisect_noise_multiplier(partial(eps, worst), target_epsilon, rtol=rtol)
        others = [eps(s, z) for s in candidates]
        i = max(range(len(candidates)), key=lambda k: others[k])
        if others[i] <= target_epsilon:
            return z
        worst = candidates[i]
    return z
