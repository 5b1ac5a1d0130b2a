"""How a UE misbehaves: one registry of behaviours for faults and Byzantine attacks.

A behaviour turns the update a UE computed into what it sends instead; it runs on the UE after local
training and before encoding, so a faulty or malicious message crosses the same codec and air as an
honest one. A behaviour marked ``silent`` sends nothing at all (the UE never answers); one with
``poison`` changes the UE's training data first (data poisoning); one that ``needs_honest`` is
omniscient: it sees the honest updates of every UE of the same dispatch (ALIE, IPM).

Faults (``faults.kind``): ``nan``, ``inf``, ``huge``, ``zero``, ``silent``. Attacks (``adversary.attack``):
``sign_flip``, ``scale``, ``gaussian``, ``label_flip``, ``alie``, ``ipm``. Register more with
:func:`register_behaviour`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

Update = list[torch.Tensor]
Poison = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class BehaviourContext:
    """What a behaviour may use.

    Attributes:
        round: the round (async: the BS round at dispatch).
        ue: the UE id.
        rng: the behaviour's own generator (stream (seed, "misbehave", round, ue, dispatch)).
        params: the section's numeric parameters (``scale``, ``factor``, ``sigma``, ``z``, ``epsilon``).
        honest: the honest updates of every UE of the same dispatch (for omniscient attacks).
        attackers: how many UEs of the dispatch run this behaviour.
    """

    round: int
    ue: int
    rng: torch.Generator
    params: Mapping[str, float | None] = field(default_factory=dict)
    honest: Sequence[Update] = field(default_factory=tuple)
    attackers: int = 1


@dataclass(frozen=True)
class Behaviour:
    """A named way to misbehave: ``apply(update, ctx)`` returns what is sent (ignored when ``silent``)."""

    name: str
    apply: Callable[[Update, BehaviourContext], Update]
    silent: bool = False
    needs_honest: bool = False
    poison: Poison | None = None
    description: str = ""


BEHAVIOURS: dict[str, Behaviour] = {}


def register_behaviour(behaviour: Behaviour) -> Behaviour:
    """Add ``behaviour`` to :data:`BEHAVIOURS` under its name."""
    if behaviour.name in BEHAVIOURS:
        raise ValueError(f"behaviour {behaviour.name!r} is already registered")
    BEHAVIOURS[behaviour.name] = behaviour
    return behaviour


def _param(ctx: BehaviourContext, name: str, default: float) -> float:
    value = ctx.params.get(name)
    return default if value is None else float(value)


# ------------------------------------------------------------------------------------------- faults


def _fill(value: float) -> Callable[[Update, BehaviourContext], Update]:
    def apply(update: Update, ctx: BehaviourContext) -> Update:
        return [torch.full_like(t, value) for t in update]

    return apply


def _huge(update: Update, ctx: BehaviourContext) -> Update:
    return [t * _param(ctx, "scale", 1e30) for t in update]


def _same(update: Update, ctx: BehaviourContext) -> Update:
    return update


register_behaviour(Behaviour("nan", _fill(float("nan")), description="every value NaN"))
register_behaviour(Behaviour("inf", _fill(float("inf")), description="every value +Inf"))
register_behaviour(Behaviour("huge", _huge, description="the update times faults.scale (finite)"))
register_behaviour(Behaviour("zero", _fill(0.0), description="an all-zero update"))
register_behaviour(Behaviour("silent", _same, silent=True, description="never answers"))

# ------------------------------------------------------------------------------------------ attacks


def _sign_flip(update: Update, ctx: BehaviourContext) -> Update:
    return [-_param(ctx, "factor", 1.0) * t for t in update]


def _scale(update: Update, ctx: BehaviourContext) -> Update:
    return [_param(ctx, "factor", 10.0) * t for t in update]


def _gaussian(update: Update, ctx: BehaviourContext) -> Update:
    sigma = _param(ctx, "sigma", 1.0)
    return [torch.randn(t.shape, generator=ctx.rng, dtype=t.dtype) * sigma for t in update]


def _flip_labels(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    return x, (num_classes - 1) - y


def _stats(ctx: BehaviourContext) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if not ctx.honest:
        raise ValueError("an omniscient attack needs the honest updates of its dispatch")
    means, stds = [], []
    for j in range(len(ctx.honest[0])):
        stack = torch.stack([u[j].to(torch.float64) for u in ctx.honest])
        means.append(stack.mean(0))
        stds.append(stack.std(0, unbiased=False) if stack.shape[0] > 1 else torch.zeros_like(stack[0]))
    return means, stds


def alie_z(n: int, f: int) -> float:
    """ALIE's z_max (Baruch et al. 2019): the largest z for which s = floor(n/2 + 1) - f honest updates
    are farther from the mean than the attackers: z = Phi^{-1}((n - s) / n)."""
    s = math.floor(n / 2 + 1) - f
    p = (n - s) / n
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


def _alie(update: Update, ctx: BehaviourContext) -> Update:
    means, stds = _stats(ctx)
    z = ctx.params.get("z")
    zz = alie_z(len(ctx.honest), ctx.attackers) if z is None else float(z)
    return [(m - zz * s).to(t.dtype) for m, s, t in zip(means, stds, update)]


def _ipm(update: Update, ctx: BehaviourContext) -> Update:
    means, _ = _stats(ctx)
    eps = _param(ctx, "epsilon", 0.5)
    return [(-eps * m).to(t.dtype) for m, t in zip(means, update)]


register_behaviour(Behaviour("sign_flip", _sign_flip, description="-factor times the honest update"))
register_behaviour(Behaviour("scale", _scale, description="factor times the honest update (default 10)"))
register_behaviour(Behaviour("gaussian", _gaussian, description="N(0, sigma^2) noise instead of the update"))
register_behaviour(
    Behaviour("label_flip", _same, poison=_flip_labels, description="trains on labels c -> C - 1 - c")
)
register_behaviour(
    Behaviour(
        "alie",
        _alie,
        needs_honest=True,
        description="A Little Is Enough: mean - z std of the honest updates (Baruch et al. 2019)",
    )
)
register_behaviour(
    Behaviour(
        "ipm",
        _ipm,
        needs_honest=True,
        description="inner-product manipulation: -epsilon x mean of the honest updates (Xie et al. 2020)",
    )
)

FAULT_KINDS = ("nan", "inf", "huge", "zero", "silent")
ATTACKS = ("sign_flip", "scale", "gaussian", "label_flip", "alie", "ipm")
