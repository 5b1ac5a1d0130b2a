"""Robust aggregation rules, in a registry by spec string: pure functions over decoded updates.

An update is a list of tensors (one per model parameter). Every rule maps ``n`` updates (and, for
``mean``, their weights) to one update; ``centered_clip`` also takes the previous aggregate as its
centre. Specs: ``mean``, ``median``, ``trimmed_mean[:beta]``, ``krum[:f]``, ``multi_krum[:f[:m]]``,
``rfa[:iters]``, ``centered_clip[:tau[:iters]]``.

- ``mean``: the weighted mean. Tolerates no attacker.
- ``median``: the coordinate-wise median (the mean of the two middle values for even n); f < n/2.
- ``trimmed_mean:beta``: per coordinate, the mean after dropping the floor(beta n) smallest and largest
  values; f <= floor(beta n).
- ``krum:f``: the update with the smallest sum of squared distances to its n - f - 2 nearest (Blanchard
  et al. 2017); needs n >= 2f + 3.
- ``multi_krum:f:m``: the mean of the m updates with the best Krum scores (default m = n - f); n >= 2f + 3.
- ``rfa:iters``: the geometric median by smoothed Weiszfeld iterations (Pillutla et al. 2022); f < n/2.
- ``centered_clip:tau:iters``: v <- v + mean_i clip_tau(x_i - v), from the previous aggregate
  (Karimireddy et al. 2021); f < n/2 with a bounded spread. tau defaults to the median distance to the
  centre; a small explicit tau moves the centre by at most tau per iteration, so equal updates are reached
  only after enough iterations.

Robust rules treat every update alike (sample weights are ignored: weighting by a count a UE reports
would let an attacker claim a large one). ``f`` defaults to ceil(0.2 n), capped where the rule needs it;
``beta`` defaults to 0.2. A round with too few updates for a rule raises :class:`TooFewUpdates`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from fedwave.errors import ConfigError, FedwaveError

Update = Sequence[torch.Tensor]


class TooFewUpdates(FedwaveError):
    """A robust rule received fewer updates than it needs to give its guarantee."""


@dataclass(frozen=True)
class Aggregator:
    """A parsed aggregation rule: ``aggregate(updates, weights, center) -> update``.

    Attributes:
        spec: the normalised spec string.
        fn: the rule over stacked flat updates ``(n, d)`` (float64), weights ``(n,)`` and a centre.
        robust: whether the rule resists attackers (robust rules ignore the weights).
        min_updates: the fewest updates the rule accepts (fewer raise :class:`TooFewUpdates`).
        tolerates: how many attackers the rule is designed for, in words.
    """

    spec: str
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    robust: bool
    min_updates: int = 1
    tolerates: str = "no attacker"

    def aggregate(
        self,
        updates: Sequence[Update],
        weights: Sequence[float] | None = None,
        center: Update | None = None,
    ) -> list[torch.Tensor]:
        """Aggregate ``updates`` (each a list of tensors of the same shapes) into one update."""
        if not updates:
            raise TooFewUpdates(f"{self.spec}: no update to aggregate")
        shapes = [t.shape for t in updates[0]]
        if any([t.shape for t in u] != shapes for u in updates):
            raise ValueError("updates hold tensors of different shapes")
        flat = torch.stack([_flatten(u) for u in updates])  # (n, d) float64
        w = (
            torch.ones(len(updates), dtype=torch.float64)
            if weights is None
            else torch.tensor(weights).double()
        )
        if w.numel() != len(updates) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(f"weights must be non-negative, one per update, with a positive sum; got {w}")
        c = None if center is None else _flatten(center)
        out = self.fn(flat, w, c)
        return _unflatten(out, updates[0])


def _flatten(update: Update) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in update])


def _unflatten(flat: torch.Tensor, like: Update) -> list[torch.Tensor]:
    out, offset = [], 0
    for t in like:
        n = t.numel()
        out.append(flat[offset : offset + n].reshape(t.shape).to(t.dtype))
        offset += n
    return out


# ----------------------------------------------------------------------------------------------- rules


def _mean(x: torch.Tensor, w: torch.Tensor, center: torch.Tensor | None) -> torch.Tensor:
    return (w / w.sum()) @ x


def _median(x: torch.Tensor, w: torch.Tensor, center: torch.Tensor | None) -> torch.Tensor:
    s = torch.sort(x, dim=0).values
    n = s.shape[0]
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _trimmed_mean(beta: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    def fn(x: torch.Tensor, w: torch.Tensor, center: torch.Tensor | None) -> torch.Tensor:
        n = x.shape[0]
        k = math.floor(beta * n)
        if n <= 2 * k:
            raise TooFewUpdates(
                f"trimmed_mean:{beta} drops {k} from each end: it needs more than {2 * k} updates, got {n}"
            )
        return torch.sort(x, dim=0).values[k : n - k].mean(dim=0)

    return fn


def default_f(n: int) -> int:
    """The attackers a rule is tuned for when ``f`` is not given: ceil(0.2 n)."""
    return math.ceil(0.2 * n)


def _krum_scores(x: torch.Tensor, f: int) -> torch.Tensor:
    n = x.shape[0]
    if n < 2 * f + 3:
        raise TooFewUpdates(f"Krum with f = {f} needs at least {2 * f + 3} updates (n >= 2f + 3), got {n}")
    d2 = torch.cdist(x, x).pow(2)
    nearest = torch.sort(d2, dim=1).values[:, 1 : n - f - 1]  # skip the distance to itself
    return nearest.sum(dim=1)


def _krum(
    f: int | None, m: int | None
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    def fn(x: torch.Tensor, w: torch.Tensor, center: torch.Tensor | None) -> torch.Tensor:
        n = x.shape[0]
        ff = default_f(n) if f is None else f
        if f is None:
            ff = max(0, min(ff, (n - 3) // 2))
        scores = _krum_scores(x, ff)
        order = torch.argsort(scores, stable=True)
        keep = 1 if m == 1 else (n - ff if m is None else m)
        if keep > n:
            raise TooFewUpdates(f"multi_krum keeps m = {keep} updates, got only {n}")
        return x[order[:keep]].mean(dim=0)

    return fn


def _rfa(iters: int) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    def fn(x: torch.Tensor, w: torch.Tensor, center: torch.Tensor | None) -> torch.Tensor:
        z = x.mean(dim=0)
        scale = float(torch.linalg.vector_norm(x, dim=1).max()) or 1.0
        nu = 1e-8 * scale
        for _ in range(iters):
            dist = torch.linalg.vector_norm(x - z, dim=1).clamp_min(nu)
            beta = 1.0 / dist
            new = (beta / beta.sum()) @ x
            if float(torch.linalg.vector_norm(new - z)) <= 1e-10 * scale:
                return new
            z = new
        return z

    return fn


def _centered_clip(
    tau: float | None, iters: int
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    def fn(x: torch.Tensor, w: torch.Tensor, center: torch.Tensor | None) -> torch.Tensor:
        v = torch.zeros(x.shape[1], dtype=x.dtype) if center is None else center.clone()
        t = tau
        if t is None:  # the median distance to the centre: clips the far half, keeps the near half
            t = float(torch.linalg.vector_norm(x - v, dim=1).median())
        for _ in range(iters):
            diff = x - v
            norm = torch.linalg.vector_norm(diff, dim=1, keepdim=True)
            factor = torch.where(norm > t, t / norm.clamp_min(1e-300), torch.ones_like(norm))
            v = v + (diff * factor).mean(dim=0)
        return v

    return fn


# ----------------------------------------------------------------------------------------------- specs


def _number(text: str, what: str, kind: type, low: float, high: float) -> float:
    try:
        value = kind(text)
    except ValueError:
        noun = "whole number" if kind is int else "number"
        raise ConfigError(f"{what} must be a {noun} in [{low}, {high}], got {text!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{what} must be in [{low}, {high}], got {text!r}")
    return value


USAGE = {
    "mean": "mean",
    "median": "median",
    "trimmed_mean": "trimmed_mean[:beta], beta in [0, 0.5)",
    "krum": "krum[:f]",
    "multi_krum": "multi_krum[:f[:m]]",
    "rfa": "rfa[:iters]",
    "centered_clip": "centered_clip[:tau[:iters]]",
}


def get_aggregator(spec: str) -> Aggregator:
    """The rule of a spec string such as ``median``, ``trimmed_mean:0.1`` or ``krum:2``.

    Raises:
        ConfigError: unknown name or bad arguments (the message lists the valid specs).
    """
    text = str(spec).strip().lower()
    name, *args = text.split(":")
    if name not in USAGE:
        from fedwave.plugins import find_aggregator  # a plug-in: registered, import path or entry point

        plugin: Aggregator | None = find_aggregator(str(spec))
        if plugin is not None:
            return plugin
        raise ConfigError(f"unknown aggregator {spec!r}; valid: {', '.join(USAGE.values())}")
    limits = {
        "mean": 0,
        "median": 0,
        "trimmed_mean": 1,
        "krum": 1,
        "multi_krum": 2,
        "rfa": 1,
        "centered_clip": 2,
    }
    if len(args) > limits[name]:
        raise ConfigError(f"aggregator {spec!r}: too many arguments; usage {USAGE[name]}")
    half = "f < n/2 attackers among n updates"
    if name == "mean":
        return Aggregator(text, _mean, robust=False)
    if name == "median":
        return Aggregator(text, _median, robust=True, tolerates=half)
    if name == "trimmed_mean":
        beta = _number(args[0], "trimmed_mean: beta", float, 0.0, 0.4999) if args else 0.2
        return Aggregator(
            text, _trimmed_mean(beta), robust=True, tolerates=f"f <= floor({beta:g} n) attackers"
        )
    if name in ("krum", "multi_krum"):
        f = int(_number(args[0], f"{name}: f", int, 0, 10**6)) if args else None
        m = (
            1
            if name == "krum"
            else (int(_number(args[1], "multi_krum: m", int, 1, 10**6)) if len(args) > 1 else None)
        )
        need = max(3 if f is None else 2 * f + 3, m or 1)
        told = "f = ceil(0.2 n) (capped at (n - 3) / 2)" if f is None else f"f = {f}"
        return Aggregator(
            text, _krum(f, m), robust=True, min_updates=need, tolerates=f"{told} attackers; n >= 2f + 3"
        )
    if name == "rfa":
        iters = int(_number(args[0], "rfa: iters", int, 1, 10**4)) if args else 100
        return Aggregator(text, _rfa(iters), robust=True, tolerates=half)
    tau = _number(args[0], "centered_clip: tau", float, 1e-300, 1e300) if args else None
    iters = int(_number(args[1], "centered_clip: iters", int, 1, 1000)) if len(args) > 1 else 1
    return Aggregator(
        text, _centered_clip(tau, iters), robust=True, tolerates=half + " with a bounded honest spread"
    )


def format_aggregator_list() -> str:
    """The rules as a table: spec usage, robust or not, the fewest updates and the attackers tolerated."""
    rows = [("usage", "robust", "min updates", "designed for")]
    for name, usage in USAGE.items():
        agg = get_aggregator(name)
        rows.append((usage, "yes" if agg.robust else "no", str(agg.min_updates), agg.tolerates))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.append(
        "server.aggregator=<usage>; f defaults to ceil(0.2 n), beta to 0.2; robust rules weigh UEs alike"
    )
    return "\n".join(lines)
