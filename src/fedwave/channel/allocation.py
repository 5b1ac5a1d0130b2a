"""FDMA resource allocation of one round: the bandwidth split (and, for energy, the CPU frequencies).

Every solver is a pure function ``solver(problem) -> Allocation`` of an :class:`AllocationProblem`, in
the registry :data:`ALLOCATIONS` by the name ``wireless.access.allocation`` gives:

* ``equal``: W / n each (or W w_i / sum w, with ``access.shares`` as weights w).
* ``min_latency``: the split that makes the round end as early as possible. UE i can start its
  upload at a_i (its download end plus its compute time, s) and sends L_i bits at r_i(b) =
  b E[log2(1 + s_i x / b)], where s_i = P_i G_i / (N0 Gamma) (Hz) folds power, mean gain, noise and the
  SNR gap, and the expectation is over the fading power x (the ergodic rate an upload spanning many
  coherence blocks gets; x = 1 without fading). It minimises max_i a_i + L_i / r_i(b_i) subject to
  sum b_i = W, exactly: a root search on the finish time T (the band sum_i b_i(T) needed to finish by T
  is decreasing in T; bisection, then Brent's method), with r_i(b) = L_i / (T - a_i) solved for b
  (closed form by Lambert W without fading, else regula falsi), polished by Newton steps.
* ``min_energy``: minimises the UEs' energy sum_i P_i L_i / r_i(b_i) + kappa_i c_i f_i^2 (c_i = C D, the
  cycles of the update; compute energy only with a CPU frequency to choose, i.e. ``cycles`` devices)
  subject to every UE finishing by the deadline, f_i <= f_max,i and sum b_i = W (Yang et al. 2021). For
  a band b the best f is the slowest that still meets the deadline, f = c / (S_i - L_i / r_i(b)) with
  S_i the deadline minus the UE's download end; the energy E_i(b) left is convex and decreasing in b,
  so the KKT conditions -E_i'(b_i) = lambda (or b_i at its least feasible band) are solved by
  Brent's method on log lambda with a regula falsi on log b inside. If the deadline cannot be met by
  every UE even with all CPUs at f_max, the round falls back to ``min_latency`` (CPUs at f_max) and
  says so (``RoundRecord.extra["allocation_fallback"]`` = 1).

Retransmissions and packet errors are not part of these problems: they plan the first attempt.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

LN2 = math.log(2.0)
#: Relative accuracy of the root searches (finish time, Lagrange multiplier, bands).
RTOL = 1e-13
#: The deadline is planned this much (relatively) early, so rounding cannot push a UE past it.
DEADLINE_MARGIN = 1e-9

Array = NDArray[np.float64]


@dataclass(frozen=True)
class AllocationProblem:
    """One round's uplink allocation problem; arrays have one entry per uploading UE.

    Attributes:
        bandwidth_hz: W, the band to split (Hz).
        bits: L_i, bits on the air of each message (payload and header); at least 1.
        snr_hz: s_i = P_i G_i x_i / (N0 Gamma) in Hz, so that r_i(b) = b log2(1 + s_i / b) bit/s.
        power_w: P_i, transmit power (W).
        download_s: seconds from the round start until UE i has the model.
        compute_s: UE i's compute time at its full CPU speed (s).
        cycles: c_i = C D, CPU cycles of the update (``cycles`` devices; None: the compute time is fixed).
        cpu_max_hz: f_max,i (Hz), with ``cycles``.
        kappa: switched capacitance kappa_i, with ``cycles``.
        weights: ``equal``'s weights (``access.shares``); None: equal.
        deadline_s: the round deadline from the round start (s), for ``min_energy``.
        fading: the quadrature of the fading power the allocator averages the rate over
            (:func:`fading_quadrature`); None: x = 1.
    """

    bandwidth_hz: float
    bits: Array
    snr_hz: Array
    power_w: Array
    download_s: Array
    compute_s: Array
    cycles: Array | None = None
    cpu_max_hz: Array | None = None
    kappa: Array | None = None
    weights: Array | None = None
    deadline_s: float | None = None
    fading: tuple[Array, Array] | None = None

    @property
    def ready_s(self) -> Array:
        """a_i: when UE i can start its upload at full CPU speed (s from the round start)."""
        return self.download_s + self.compute_s


@dataclass(frozen=True)
class Allocation:
    """A solver's answer: each UE's band (Hz, summing to W), CPU frequency (Hz; None: unchanged) and
    whether ``min_energy`` fell back to ``min_latency`` (the deadline could not be met by every UE)."""

    bandwidth_hz: Array
    cpu_hz: Array | None = None
    fallback: bool = False


def fading_quadrature(model: str, rician_k: float = 0.0) -> tuple[Array, Array] | None:
    """Nodes x_k and weights w_k (summing to 1) with E[f(x)] ~= sum_k w_k f(x_k) for the fading power x
    of ``model`` (mean 1): Gauss-Laguerre (64 nodes) for Rayleigh, a Gauss-Hermite grid (32 x 32) over
    the in-phase and quadrature parts for Rician; None for ``none`` (x = 1)."""
    if model == "rayleigh":
        x, w = np.polynomial.laguerre.laggauss(64)
        return x, w / w.sum()
    if model == "rician":
        a, wa = np.polynomial.hermite_e.hermegauss(32)
        sigma = math.sqrt(1.0 / (2.0 * (rician_k + 1.0)))
        mu = math.sqrt(rician_k / (rician_k + 1.0))
        re, im = np.meshgrid(mu + sigma * a, sigma * a)
        w = np.outer(wa, wa).ravel()
        return (re**2 + im**2).ravel(), w / w.sum()
    return None


Quadrature = tuple[Array, Array] | None


def _root_decreasing(f: Callable[[Array], Array], a: Array, b: Array) -> Array:
    """Per entry, the root of a decreasing ``f`` in [a, b] (f(a) >= 0 >= f(b)) to RTOL, by the
    Illinois variant of regula falsi, which keeps the bracket and converges superlinearly. ``f`` is a
    relative residual: |f| <= 1e-15 counts as a root."""
    fa, fb = f(a), f(b)
    side = np.zeros(len(a))
    for _ in range(300):
        width = b - a
        if np.all((width <= RTOL * np.maximum(1.0, np.abs(b))) | (fa == 0) | (fb == 0)):
            break
        denom = fa - fb
        c = np.where(denom > 0, a + width * fa / np.where(denom > 0, denom, 1.0), 0.5 * (a + b))
        c = np.clip(c, a, b)
        c = np.where((c <= a) | (c >= b), 0.5 * (a + b), c)  # a stalled step: bisect
        fc = f(c)
        fc = np.where(np.abs(fc) <= 1e-15, 0.0, fc)
        right = fc > 0  # the root is in (c, b]
        a, fa = np.where(right, c, a), np.where(right, fc, fa)
        b, fb = np.where(right, b, c), np.where(right, fb, fc)
        fb = np.where(right & (side == 1), fb / 2, fb)  # the same end moved twice: Illinois halving
        fa = np.where(~right & (side == -1), fa / 2, fa)
        side = np.where(right, 1.0, -1.0)
    return np.where(fa == 0, a, np.where(fb == 0, b, 0.5 * (a + b)))


def rate_bps(bandwidth_hz: Array | float, snr_hz: Array | float, fading: Quadrature = None) -> Array:
    """r(b) = b E[log2(1 + s x / b)] in bit/s over the fading quadrature (x = 1 without), 0 at b = 0."""
    b = np.asarray(bandwidth_hz, dtype=float)
    s = np.asarray(snr_hz, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if fading is None:
            r = b * np.log1p(s / b) / LN2
        else:
            x, w = fading
            r = b * (np.log1p(np.multiply.outer(s / b, x)) @ w) / LN2
    return np.where(b > 0, r, 0.0)


def _rate_slope(b: Array, s: Array, fading: Quadrature = None) -> Array:
    """dr/db = E[ln(1 + y) - y / (1 + y)] / ln 2 with y = s x / b (a series for small y)."""
    y = s / b if fading is None else np.multiply.outer(s / b, fading[0])
    small = y < 1e-3
    ys = np.where(small, y, 0.0)
    series = ys**2 / 2 - 2 * ys**3 / 3 + 3 * ys**4 / 4
    terms = np.where(small, series, np.log1p(y) - y / (1 + y))
    return (terms if fading is None else terms @ fading[1]) / LN2


def rate_limit_bps(snr_hz: Array, fading: Quadrature = None) -> Array:
    """sup_b r(b) = s E[x] / ln 2: the rate no band reaches (bit/s)."""
    mean = 1.0 if fading is None else float(fading[0] @ fading[1])
    return np.asarray(snr_hz, dtype=float) * mean / LN2


def band_for_rate(rate: Array, snr_hz: Array, fading: Quadrature = None) -> Array:
    """The band b (Hz) with r(b) = ``rate``; inf where ``rate`` >= the limit, 0 where ``rate`` <= 0.

    Without fading, closed form: with c = rate ln 2 / s, z = 1 + s / b solves ln z = c (z - 1), so
    z = -W_{-1}(-c e^{-c}) / c. With a fading quadrature, regula falsi on log b from there (the ergodic
    rate is below the rate at the mean, so the band is larger). Then Newton steps on r(b) = rate.
    """
    from scipy.special import lambertw  # scipy only when an allocation is solved

    rate = np.asarray(rate, dtype=float)
    s = np.asarray(snr_hz, dtype=float)
    c = rate * LN2 / s
    ok = (rate > 0) & (rate < rate_limit_bps(s, fading))
    cc = np.where((c > 0) & (c < 1), c, 0.5)
    z = (-lambertw(-cc * np.exp(-cc), -1).real) / cc
    b = s / np.maximum(z - 1.0, 1e-300)
    if fading is not None:
        lo = np.where(ok, np.log(b), 0.0)
        hi = lo + 1.0
        for _ in range(200):
            short = ok & (rate_bps(np.exp(hi), s, fading) < rate)
            if not short.any():
                break
            lo, hi = np.where(short, hi, lo), np.where(short, hi + 1.0, hi)
        b = np.exp(
            _root_decreasing(lambda x: np.where(ok, rate - rate_bps(np.exp(x), s, fading), 0.0), lo, hi)
        )
    for _ in range(3):
        step = (rate_bps(b, s, fading) - rate) / _rate_slope(b, s, fading)
        b = np.where(ok, np.maximum(b - step, b * 0.5), b)
    return np.where(ok, b, np.where(rate <= 0, 0.0, np.inf))


def equal(problem: AllocationProblem) -> Allocation:
    """W / n each, or W w_i / sum w with weights."""
    n = len(problem.bits)
    w = np.ones(n) if problem.weights is None else np.asarray(problem.weights, dtype=float)
    return Allocation(problem.bandwidth_hz * w / w.sum())


def _fill(bands: Array, total: float) -> Array:
    """Scale ``bands`` (summing to at most ``total``) up to sum exactly to ``total``."""
    return bands * (total / bands.sum())


def min_latency_finish_s(problem: AllocationProblem, ready_s: Array | None = None) -> float:
    """The least T with sum_i b_i(T) <= W, b_i(T) the band that has UE i done by T (Brent's method on
    a bracket from the equal split's finish time down to the first T every UE can meet)."""
    from scipy.optimize import brentq  # scipy only when an allocation is solved

    a = problem.ready_s if ready_s is None else ready_s
    bits, s, w = problem.bits, problem.snr_hz, problem.bandwidth_hz
    n = len(bits)
    q = problem.fading
    lo = float(np.max(a + bits / rate_limit_bps(s, q)))  # below this some UE needs an infinite band
    hi = float(np.max(a + bits / rate_bps(np.full(n, w / n), s, q)))  # the equal split finishes by then

    def surplus(t: float) -> float:  # decreasing in t; +inf where some UE cannot finish by t
        return float(band_for_rate(bits / (t - a), s, q).sum()) / w - 1.0

    if surplus(hi) >= 0:
        return hi
    for _ in range(200):  # bisect until the lower end is finite, then Brent
        mid = 0.5 * (lo + hi)
        if hi - mid <= RTOL * hi:
            return hi
        f_mid = surplus(mid)
        if f_mid <= 0:
            hi = mid
        elif math.isfinite(f_mid):
            lo = mid
            break
        else:
            lo = mid
    t = brentq(surplus, lo, hi, xtol=RTOL * hi, rtol=4 * np.finfo(float).eps)
    return t if surplus(t) <= 0 else t * (1 + 4 * np.finfo(float).eps)


def min_latency(problem: AllocationProblem) -> Allocation:
    """The split of W that minimises the latest finish time max_i a_i + L_i / r_i(b_i)."""
    if len(problem.bits) == 1:
        return Allocation(np.array([problem.bandwidth_hz]))
    t = min_latency_finish_s(problem)
    bands = band_for_rate(problem.bits / (t - problem.ready_s), problem.snr_hz, problem.fading)
    return Allocation(_fill(bands, problem.bandwidth_hz))


# -- min_energy -------------------------------------------------------------------------------------


def _energy_parts(problem: AllocationProblem) -> tuple[Array, Array, Array]:
    """(slack S_i = deadline - download end, least compute time, coefficient kappa c^3 or 0)."""
    assert problem.deadline_s is not None
    slack = problem.deadline_s * (1.0 - DEADLINE_MARGIN) - problem.download_s
    if problem.cycles is None:
        return slack, problem.compute_s, np.zeros(len(problem.bits))
    assert problem.cpu_max_hz is not None and problem.kappa is not None
    return slack, problem.cycles / problem.cpu_max_hz, problem.kappa * problem.cycles**3


def _energy_slope(b: Array, problem: AllocationProblem, slack: Array, coef: Array) -> Array:
    """-dE_i/db (J/Hz) at band b: -u'(b) (P + 2 kappa c^3 / (S - u)^3), u = L / r(b)."""
    s = problem.snr_hz
    r = rate_bps(b, s, problem.fading)
    du = problem.bits * _rate_slope(b, s, problem.fading) / r**2  # -du/db > 0
    u = problem.bits / r
    left = np.maximum(slack - u, 1e-300)
    return du * (problem.power_w + np.where(coef > 0, 2 * coef / left**3, 0.0))


def _band_at_multiplier(lam: float, problem: AllocationProblem, lo: Array, hi: float) -> Array:
    """Per UE, the band in [lo_i, hi] where -E_i'(b) = lam (-E_i' decreases in b)."""
    slack, _, coef = _energy_parts(problem)
    top = np.full(len(lo), hi)
    at_lo = _energy_slope(lo, problem, slack, coef) <= lam
    at_hi = _energy_slope(top, problem, slack, coef) >= lam
    inside = ~(at_lo | at_hi)

    def excess(x: Array) -> Array:
        return np.where(inside, _energy_slope(np.exp(x), problem, slack, coef) / lam - 1.0, 0.0)

    b = np.exp(_root_decreasing(excess, np.log(lo), np.log(top)))
    return np.where(at_lo, lo, np.where(at_hi, hi, b))


def least_bands_for_deadline(problem: AllocationProblem) -> Array:
    """The least band per UE that meets the deadline at f_max (inf where no band can)."""
    slack, least_compute, _ = _energy_parts(problem)
    room = slack - least_compute
    with np.errstate(divide="ignore"):
        need = np.where(room > 0, problem.bits / np.where(room > 0, room, 1.0), np.inf)
    return band_for_rate(need, problem.snr_hz, problem.fading)


def min_energy(problem: AllocationProblem) -> Allocation:
    """Bands and CPU frequencies of least total energy with every UE done by the deadline.

    Falls back to :func:`min_latency` (CPUs at f_max, ``fallback=True``) when the deadline is
    infeasible: some UE cannot meet it with any band, or the least bands sum to more than W.
    """
    from scipy.optimize import brentq  # scipy only when an allocation is solved

    if problem.deadline_s is None:
        raise ValueError("min_energy needs a deadline")
    w = problem.bandwidth_hz
    least = least_bands_for_deadline(problem)
    if not np.all(np.isfinite(least)) or least.sum() > w:
        base = min_latency(problem)
        return Allocation(base.bandwidth_hz, problem.cpu_max_hz, fallback=True)
    least = np.maximum(least * (1 + 1e-12), 1e-300)
    if len(least) == 1:
        bands = np.array([w])
    else:
        slack, _, coef = _energy_parts(problem)
        lam_lo = float(np.min(_energy_slope(np.full(len(least), w), problem, slack, coef)))
        lam_hi = float(np.max(_energy_slope(least, problem, slack, coef)))
        lo, hi = math.log(max(lam_lo, 1e-300)), math.log(max(lam_hi, 1e-300))

        def surplus(log_lam: float) -> float:  # decreasing in lambda
            return float(_band_at_multiplier(math.exp(log_lam), problem, least, w).sum()) / w - 1.0

        root = brentq(surplus, lo, hi, xtol=RTOL, rtol=4 * np.finfo(float).eps) if lo < hi else hi
        bands = _fill(_band_at_multiplier(math.exp(root), problem, least, w), w)
    cpu = None
    if problem.cycles is not None:
        slack, _, _ = _energy_parts(problem)
        u = problem.bits / rate_bps(bands, problem.snr_hz, problem.fading)
        assert problem.cpu_max_hz is not None
        cpu = np.minimum(problem.cycles / (slack - u), problem.cpu_max_hz)
    return Allocation(bands, cpu)


def round_energy_j(problem: AllocationProblem, alloc: Allocation) -> float:
    """The planned energy (J) of an allocation: radio P L / r(b) plus compute (kappa c f^2, or none)."""
    radio = problem.power_w * problem.bits / rate_bps(alloc.bandwidth_hz, problem.snr_hz, problem.fading)
    compute = 0.0
    if problem.cycles is not None and alloc.cpu_hz is not None:
        assert problem.kappa is not None
        compute = float(np.sum(problem.kappa * problem.cycles * alloc.cpu_hz**2))
    return float(radio.sum()) + compute


Solver = Callable[[AllocationProblem], Allocation]

#: The allocation rules by name (``wireless.access.allocation``).
ALLOCATIONS: dict[str, Solver] = {"equal": equal, "min_latency": min_latency, "min_energy": min_energy}


def get_allocation(name: str) -> Solver:
    """The solver called ``name`` (KeyError naming the known ones)."""
    try:
        return ALLOCATIONS[name]
    except KeyError:
        raise KeyError(f"unknown allocation {name!r}; choose one of {', '.join(ALLOCATIONS)}") from None
