"""The privacy plan of a run, before training: who is accounted how, with which z, and planned epsilons.

* Client level: one participant per UE, all alike. q = expected UEs per round / ``fl.num_ues``
  (``fl.fraction`` under Poisson sampling; 1 under fixed sampling, which client level only allows when
  every UE is selected), one accountant step per round.
* Sample level: one accountant per UE. A UE holding n_k samples takes local steps on Poisson batches of
  expected size B (``fl.batch_size``): q_k = min(1, B / n_k) and E ceil(n_k / B) steps per round (E =
  ``fl.local_epochs``); with ``fl.algorithm: fedsgd`` its one gradient per round uses all its data
  (q_k = 1, one step). UEs of equal size share one schedule. The plan assumes every UE trains in every
  round, an upper bound: a run accounts only the rounds a UE actually trains.

With ``dp.target_epsilon`` the plan calibrates z so that the worst participant ends the planned rounds
at that epsilon (within 1% below it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedwave.errors import ConfigError
from fedwave.privacy.dp.calibrate import Schedule, calibrate_noise_multiplier, planned_epsilons


@dataclass(frozen=True)
class PrivacyPlan:
    """The accounting of a run: level, accountant, delta, z (given or calibrated) and the schedules.

    ``schedules`` maps each distinct schedule to the UEs that follow it (client level: one schedule for
    all UEs). ``sizes`` holds the UEs' sample counts at sample level.
    """

    level: str
    accountant: str
    delta: float
    clip: float | None
    noise_multiplier: float
    target_epsilon: float | None
    rounds: int
    schedules: dict[Schedule, list[int]]
    sizes: tuple[int, ...] = ()

    def epsilons(self, rounds: Sequence[int]) -> dict[Schedule, list[float]]:
        """Planned epsilon of each schedule after each of ``rounds`` (increasing)."""
        return {
            s: planned_epsilons(self.accountant, self.noise_multiplier, s, rounds, self.delta)
            for s in self.schedules
        }


def client_sample_rate(fl: Any) -> float:
    """q of client level: ``fl.fraction`` under Poisson sampling, else the selected share of the UEs."""
    if fl.sampling == "poisson":
        return float(fl.fraction)
    return fl.per_round() / fl.num_ues


def local_schedule(num_samples: int, batch_size: int, local_epochs: int, algorithm: str) -> Schedule:
    """Sample level: (q_k, steps per round) of a UE holding ``num_samples`` (>= 1) samples."""
    if num_samples < 1:
        raise ValueError(f"a UE with {num_samples} samples takes no DP-SGD steps")
    if algorithm == "fedsgd":
        return Schedule(1.0, 1)
    return Schedule(min(1.0, batch_size / num_samples), local_epochs * math.ceil(num_samples / batch_size))


def schedules_for(cfg: Any, ue_sizes: Sequence[int] | None = None) -> dict[Schedule, list[int]]:
    """The accounting schedules of ``cfg`` and the UEs following each (sizes needed at sample level)."""
    level = cfg.dp.level
    if level == "client":
        return {Schedule(client_sample_rate(cfg.fl), 1): list(range(cfg.fl.num_ues))}
    if level == "sample":
        if ue_sizes is None:
            raise ValueError("sample-level accounting needs the UEs' sample counts")
        groups: dict[Schedule, list[int]] = {}
        for ue, n in enumerate(ue_sizes):
            if n < 1:
                continue  # a UE without data never trains: it releases nothing (epsilon 0)
            s = local_schedule(int(n), cfg.fl.batch_size, cfg.fl.local_epochs, cfg.fl.algorithm)
            groups.setdefault(s, []).append(ue)
        if not groups:
            raise ConfigError("dp.level=sample: no UE holds any training data; check data.* and fl.num_ues")
        return groups
    raise ConfigError(
        "dp.level is 'off': there is nothing to account. Set dp.level=client or sample, e.g. "
        "-o dp.level=client -o dp.noise_multiplier=1.0 -o fl.sampling=poisson -o fl.fraction=0.25"
    )


def resolved_dp_config(cfg: Any, plan: PrivacyPlan) -> Any:
    """``cfg.dp`` with the plan's z written in and ``target_epsilon`` cleared (the run's resolved config).

    The two keys exclude each other, so the resolved config names the z that was used and stays valid
    when read back; the target belongs in the run's summary.
    """
    return cfg.dp.model_copy(update={"noise_multiplier": plan.noise_multiplier, "target_epsilon": None})


def ue_sizes_for(cfg: Any) -> list[int]:
    """Each UE's number of training samples under ``cfg``'s dataset and partition."""
    from fedwave.data.federated import dataset_for, partition_for

    labels = dataset_for(cfg).y_train.numpy()
    return [len(p) for p in partition_for(cfg, labels)]


def plan_privacy(cfg: Any, ue_sizes: Sequence[int] | None = None) -> PrivacyPlan:
    """The privacy plan of ``cfg`` (z calibrated when ``dp.target_epsilon`` is set).

    Sample level reads the UEs' sizes from the dataset and partition unless ``ue_sizes`` is given.
    """
    dp = cfg.dp
    if dp.level == "sample" and ue_sizes is None:
        ue_sizes = ue_sizes_for(cfg)
    schedules = schedules_for(cfg, ue_sizes)
    rounds = int(cfg.fl.rounds)
    if dp.target_epsilon is not None:
        z = calibrate_noise_multiplier(dp.target_epsilon, dp.delta, list(schedules), rounds, dp.accountant)
    else:
        z = float(dp.noise_multiplier)
    return PrivacyPlan(
        level=dp.level,
        accountant=dp.accountant,
        delta=dp.delta,
        clip=dp.clip,
        noise_multiplier=z,
        target_epsilon=dp.target_epsilon,
        rounds=rounds,
        schedules=schedules,
        sizes=tuple(int(n) for n in ue_sizes) if ue_sizes is not None else (),
    )


def last_round_within(plan: PrivacyPlan, epsilon: float) -> int:
    """The last planned round whose worst epsilon is at most ``epsilon`` (0: not even round 1).

    Epsilon grows with the rounds, so this is a binary search (about log2(rounds) accountant queries).
    """

    def worst(r: int) -> float:
        return max(e[0] for e in plan.epsilons([r]).values())

    lo, hi = 0, plan.rounds  # worst(lo) <= epsilon (lo = 0: nothing released) ; search the last such r
    if worst(hi) <= epsilon:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if worst(mid) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo


def shown_rounds(rounds: int, every: bool = False) -> list[int]:
    """Rounds of a compact table: all when ``every`` or <= 30, else 1-2-5 steps plus tenths and the last."""
    if every or rounds <= 30:
        return list(range(1, rounds + 1))
    picks = {rounds}
    step = 1
    while step <= rounds:
        picks.update(r for r in (step, 2 * step, 5 * step) if r <= rounds)
        step *= 10
    picks.update(max(1, round(rounds * k / 10)) for k in range(1, 10))
    return sorted(picks)


def per_ue_epsilons(plan: PrivacyPlan, epsilons: dict[Schedule, list[float]], index: int) -> list[float]:
    """Epsilon of every UE (by UE id) at position ``index`` of the epsilon lists."""
    out = [0.0] * (len(plan.sizes) or sum(len(ues) for ues in plan.schedules.values()))
    for s, ues in plan.schedules.items():
        for ue in ues:
            out[ue] = epsilons[s][index]
    return out
