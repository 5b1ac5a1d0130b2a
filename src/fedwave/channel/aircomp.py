"""Over-the-air computation: truncated channel inversion and the analog or one-bit sum the BS receives.

Pure functions of their arguments and a generator (Zhu, Wang and Huang 2019, broadband analog
aggregation; Zhu, Du, Gunduz and Huang 2020, one-bit over-the-air aggregation).

Channel and power (per round, per UE k): large-scale gain ``G_k`` (path loss and shadowing, linear),
fading power ``x_k = |h_k|^2`` (mean 1), power limit ``P_k`` (W). UE k transmits unit-energy complex
symbols ``c_k`` scaled so that the BS receives every UE with the same power ``rho0`` (W) and phase:
its transmit power is ``p_k = rho0 / (G_k x_k)``. A UE with ``x_k`` below the truncation threshold
``g_th`` stays silent (it cannot be inverted cheaply). ``p_k <= P_k`` for every active UE fixes the
largest aligned received power: ``rho0 = min over active k of P_k G_k x_k``.

Received signal (complex baseband, W complex symbols per s on the band W): ``y = sqrt(rho0) sum_k c_k +
z``, ``z ~ CN(0, N0 W)``, i.e. N0 W / 2 per real dimension. Two real entries ``(a, b)`` ride on one
symbol ``c = (a + j b) / sqrt(2)``, so the analog phase of d entries lasts ``ceil(d/2) / W`` seconds,
whatever the number of UEs. The BS's estimate of the sum of the real entries is ``sqrt(2 / rho0)`` times
the real and imaginary parts of ``y``; its noise has variance ``2 (N0 W / 2) / rho0 = N0 W / rho0`` per
entry.

Analog mode: UE k scales its update by ``K w_k`` (``w_k`` its aggregation weight, summing to 1 over the
K active UEs) and normalises every entry by the common mean ``m`` and standard deviation ``s`` of all
the scaled entries, which the BS computes from each UE's digital scalars (sample count, mean, mean
square). The estimate is ``m + s r / K`` with ``r`` the received sum of normalised entries: the
weighted mean of the updates plus Gaussian noise of std ``s sqrt(N0 W / rho0) / K`` per coordinate.

One-bit mode: the UEs send the signs of their entries (two per QPSK symbol) with the same inversion; the
BS takes the majority vote ``sign(Re/Im y)`` and multiplies it by the weighted mean of the UEs' mean
absolute entries (sent digitally). A coordinate whose signs sum to ``S != 0`` flips with probability
``Q(|S| sqrt(rho0 / (N0 W)))``.

Numerics: float64 throughout; the caller casts the estimate to the model's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Inversion:
    """Truncated channel inversion of one round.

    Attributes:
        active: per UE, whether it transmits (its fading power is at least the threshold and non-zero).
        rho0_w: the aligned received power per UE symbol (W); 0 when no UE is active.
        tx_power_w: per UE, its transmit power (W) for unit-energy symbols (0 when truncated).
    """

    active: NDArray[np.bool_]
    rho0_w: float
    tx_power_w: NDArray[np.float64]


def truncated_inversion(
    power_w: NDArray[np.float64],
    gain: NDArray[np.float64],
    fading_power: NDArray[np.float64],
    threshold: float,
) -> Inversion:
    """Who transmits and at what power: ``rho0 = min_active P_k G_k x_k``, ``p_k = rho0 / (G_k x_k)``.

    Args:
        power_w: power limits ``P_k`` (W).
        gain: large-scale gains ``G_k`` (linear).
        fading_power: fading powers ``x_k = |h_k|^2`` (linear, mean 1).
        threshold: truncation threshold ``g_th`` on ``x_k`` (linear); ``x_k < g_th`` or ``x_k = 0``: silent.
    """
    p = np.asarray(power_w, dtype=float)
    g = np.asarray(gain, dtype=float)
    x = np.asarray(fading_power, dtype=float)
    active = (x >= threshold) & (x > 0.0)
    tx = np.zeros_like(x)
    if not active.any():
        return Inversion(active, 0.0, tx)
    rho0 = float(np.min(p[active] * g[active] * x[active]))
    tx[active] = rho0 / (g[active] * x[active])
    return Inversion(active, rho0, tx)


def analog_symbols(entries: int) -> int:
    """Complex symbols carrying ``entries`` real entries (two per symbol)."""
    return (int(entries) + 1) // 2


def analog_airtime_s(entries: int, bandwidth_hz: float) -> float:
    """Seconds of the analog phase: ``ceil(entries / 2)`` symbols at ``bandwidth_hz`` symbols per s."""
    return analog_symbols(entries) / float(bandwidth_hz)


def received_noise_var(rho0_w: float, noise_power_w: float) -> float:
    """Variance of the noise on the received sum of real entries: ``N0 W / rho0`` (per entry)."""
    if rho0_w <= 0.0:
        return math.inf
    return float(noise_power_w) / float(rho0_w)


def _superpose(
    entries: NDArray[np.float64], rho0_w: float, noise_power_w: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """The BS's estimate of ``entries.sum(0)`` (K, d) through ``y = sqrt(rho0) sum_k c_k + z``."""
    k, d = entries.shape
    n = analog_symbols(d)
    padded = np.zeros((k, 2 * n))
    padded[:, :d] = entries
    sym = (padded[:, 0::2] + 1j * padded[:, 1::2]) / math.sqrt(2.0)
    y = math.sqrt(rho0_w) * sym.sum(axis=0)
    if noise_power_w > 0.0:
        z = rng.standard_normal((2, n)) * math.sqrt(noise_power_w / 2.0)
        y = y + (z[0] + 1j * z[1])
    r = np.empty(2 * n)
    scale = math.sqrt(2.0 / rho0_w)
    r[0::2] = y.real * scale
    r[1::2] = y.imag * scale
    return r[:d]


def _checked(
    updates: NDArray[np.float64], weights: NDArray[np.float64], rho0_w: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The updates (K, d) and weights (K,) as float64, checked: K >= 1 and a positive rho0 (W)."""
    u = np.asarray(updates, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] == 0 or w.shape != (u.shape[0],):
        raise ValueError(f"need updates (K, d) with K >= 1 and one weight each, got {u.shape}, {w.shape}")
    if not rho0_w > 0.0:
        raise ValueError(f"rho0 must be positive, got {rho0_w} W")
    return u, w


@dataclass(frozen=True)
class AnalogSum:
    """The analog mode's result: the estimate (d,), the mean and std of pre-processing, the noise std
    per coordinate of the estimate (model units) and on the received sum of scaled updates."""

    estimate: NDArray[np.float64]
    mean: float
    std: float
    noise_std: float
    sum_noise_std: float


def aggregate_analog(
    updates: NDArray[np.float64],
    weights: NDArray[np.float64],
    rho0_w: float,
    noise_power_w: float,
    rng: np.random.Generator,
) -> AnalogSum:
    """Weighted mean ``sum_k w_k u_k`` of ``updates`` (K, d) as received over the air, with its noise.

    Each UE's digital scalars are the mean and mean square of its scaled update ``v_k = K w_k u_k``; the
    common statistics are ``m = mean_k mean(v_k)``, ``s^2 = mean_k meansq(v_k) - m^2`` (the variance of
    all K d scaled entries; ``s = 1`` if it is 0). Raises ValueError without active UEs or ``rho0 <= 0``.
    """
    u, w = _checked(updates, weights, rho0_w)
    k = u.shape[0]
    v = (k * w)[:, None] * u
    m = float(v.mean(axis=1).mean())
    var = float((v * v).mean(axis=1).mean()) - m * m
    s = math.sqrt(var) if var > 0.0 and math.isfinite(var) else (1.0 if math.isfinite(var) else math.nan)
    r = _superpose((v - m) / s, rho0_w, noise_power_w, rng)
    sigma = math.sqrt(received_noise_var(rho0_w, noise_power_w))
    return AnalogSum(m + s * r / k, m, s, s * sigma / k, s * sigma)


@dataclass(frozen=True)
class OneBitVote:
    """The one-bit mode's result: the estimate ``scale * vote`` (d,), the vote, the noiseless vote
    ``sign(sum_k sign(u_k))``, the scale, and the fraction of coordinates with a non-zero noiseless vote
    whose received vote differs (NaN if there is none)."""

    estimate: NDArray[np.float64]
    vote: NDArray[np.float64]
    noiseless_vote: NDArray[np.float64]
    scale: float
    flip_rate: float


def aggregate_one_bit(
    updates: NDArray[np.float64],
    weights: NDArray[np.float64],
    rho0_w: float,
    noise_power_w: float,
    rng: np.random.Generator,
) -> OneBitVote:
    """Majority vote over the air of the signs of ``updates`` (K, d), scaled by ``sum_k w_k mean|u_k|``."""
    u, w = _checked(updates, weights, rho0_w)
    signs = np.sign(u)
    vote = np.sign(_superpose(signs, rho0_w, noise_power_w, rng))
    clean = np.sign(signs.sum(axis=0))
    decided = clean != 0
    flips = (
        float(np.count_nonzero((vote != clean) & decided) / np.count_nonzero(decided))
        if decided.any()
        else math.nan
    )
    scale = float(w @ np.abs(u).mean(axis=1))
    return OneBitVote(scale * vote, vote, clean, scale, flips)
