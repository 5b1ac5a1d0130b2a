"""Text of ``fedwave privacy``: the plan's settings, the q used, the z, and epsilon after the rounds."""

from __future__ import annotations

import statistics
from typing import Any

from fedwave.privacy.dp.accountant import make_accountant
from fedwave.privacy.dp.plan import PrivacyPlan, last_round_within, per_ue_epsilons, shown_rounds


def _eps(e: float) -> str:
    return "inf" if e == float("inf") else f"{e:.4g}"


def _header(plan: PrivacyPlan, cfg_text: dict[str, str]) -> list[str]:
    acc = make_accountant(plan.accountant)
    lines = [
        f"accountant: {plan.accountant} ({acc.description}); epsilon at delta = {plan.delta:g}",
        f"rounds planned: {plan.rounds}",
    ]
    z = plan.noise_multiplier
    if plan.target_epsilon is not None:
        lines.append(
            f"noise multiplier z = {z:.6g}, calibrated so the planned rounds end at epsilon "
            f"<= {plan.target_epsilon:g} (dp.target_epsilon)"
        )
    else:
        lines.append(f"noise multiplier z = {z:g} (dp.noise_multiplier)")
    if plan.clip is None:
        lines.append("clip: none (dp.clip is null): sensitivity is unbounded, epsilon is infinite")
    lines.extend(cfg_text.values())
    return lines


def describe_plan(plan: PrivacyPlan, cfg: Any, *, every_round: bool = False) -> str:
    """The full text for ``cfg``'s plan: settings, q, z, and the epsilon table (compact for many rounds)."""
    num_ues, placement, stop_at_epsilon = cfg.fl.num_ues, cfg.dp.placement, cfg.dp.stop_at_epsilon
    rounds = shown_rounds(plan.rounds, every_round)
    eps = plan.epsilons(rounds)
    extra: dict[str, str] = {}
    if plan.level == "client":
        (sched,) = plan.schedules
        q = sched.sample_rate
        clip = plan.clip
        std = "" if clip is None else f"; noise std on the sum z*S = {plan.noise_multiplier * clip:.4g}"
        extra["level"] = (
            f"level: client (DP-FedAvg), {placement} noise; clip S = {clip}{std}, divided by q*N = "
            f"{q * num_ues:g}"
        )
        how = (
            "Poisson sampling: each UE joins with probability q"
            if cfg.fl.sampling == "poisson"
            else "fixed sampling of every UE: no amplification by sampling"
        )
        extra["q"] = (
            f"q = {q:g} per round ({how}; {q * num_ues:g} expected of {num_ues} UEs), "
            "one accountant step per round"
        )
        lines = _header(plan, extra)
        lines.append("")
        lines.append(f"{'round':>7}  {'epsilon':>10}")
        lines.extend(f"{r:>7}  {_eps(e):>10}" for r, e in zip(rounds, eps[sched]))
        final = eps[sched][-1]
    else:
        qs = sorted({s.sample_rate for s in plan.schedules})
        steps = sorted({s.steps_per_round for s in plan.schedules})
        sizes = sorted(plan.sizes)
        extra["level"] = (
            f"level: sample (DP-SGD in local training), clip C = {plan.clip} per example, noise std z*C "
            "on each step's sum, divided by the expected batch size"
        )
        extra["q"] = (
            f"per UE: q = B/n_k from {qs[0]:.4g} to {qs[-1]:.4g}, {steps[0]} to {steps[-1]} steps per round "
            f"(n_k from {sizes[0]} to {sizes[-1]} samples); assumes each UE trains every round (upper bound)"
        )
        lines = _header(plan, extra)
        lines.append("")
        lines.append(f"{'round':>7}  {'max eps':>10}  {'median':>10}  {'min eps':>10}")
        for i, r in enumerate(rounds):
            per = per_ue_epsilons(plan, eps, i)
            lines.append(
                f"{r:>7}  {_eps(max(per)):>10}  {_eps(statistics.median(per)):>10}  {_eps(min(per)):>10}"
            )
        per = per_ue_epsilons(plan, eps, len(rounds) - 1)
        final = max(per)
        worst = max(range(len(per)), key=lambda k: per[k])
        qt = statistics.quantiles(per, n=4) if len(per) > 1 else [per[0]] * 3
        lines.append("")
        lines.append(
            f"after round {plan.rounds}, epsilon over the {len(per)} UEs: min {_eps(min(per))}, "
            f"25% {_eps(qt[0])}, median {_eps(qt[1])}, 75% {_eps(qt[2])}, max {_eps(final)} "
            f"(UE {worst}, {plan.sizes[worst]} samples)"
        )
    if len(rounds) < plan.rounds:
        lines.append(f"(compact table: {len(rounds)} of {plan.rounds} rounds; --every-round shows all)")
    lines.append(f"epsilon after the planned {plan.rounds} rounds: {_eps(final)} at delta {plan.delta:g}")
    if stop_at_epsilon is not None:
        last = last_round_within(plan, stop_at_epsilon)
        if last == plan.rounds:
            lines.append(f"dp.stop_at_epsilon = {stop_at_epsilon:g} is not reached in the planned rounds")
        else:
            lines.append(
                f"dp.stop_at_epsilon = {stop_at_epsilon:g}: training would stop after round {last} "
                f"(round {last + 1} would exceed it)"
            )
    return "\n".join(lines)
