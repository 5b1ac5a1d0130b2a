"""One link: SNR, Shannon rate with a gap, packet errors and the number of transmission attempts."""

from __future__ import annotations

import math
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fedwave.channel.units import db_to_linear
from fedwave.counter_rng import uniforms


def snr_linear(
    power_w: ArrayLike, gain: ArrayLike, noise_psd_w_hz: float, bandwidth_hz: ArrayLike
) -> NDArray[np.float64]:
    """Received SNR (linear): P g / (N0 b), with P in W, g the linear channel gain, N0 in W/Hz, b in Hz."""
    p = np.asarray(power_w, dtype=float)
    g = np.asarray(gain, dtype=float)
    b = np.asarray(bandwidth_hz, dtype=float)
    return p * g / (noise_psd_w_hz * b)


def shannon_rate_bps(bandwidth_hz: ArrayLike, snr: ArrayLike, gap_db: float = 0.0) -> NDArray[np.float64]:
    """Achievable rate in bit/s: b log2(1 + SNR / Gamma), Gamma = 10^(gap_db/10) the gap to capacity.

    Args:
        bandwidth_hz: b in Hz.
        snr: linear SNR on that band.
        gap_db: the SNR gap of the practical coding scheme in dB (0 dB: capacity).
    """
    gamma = float(db_to_linear(gap_db))
    return np.asarray(bandwidth_hz, dtype=float) * np.log2(1.0 + np.asarray(snr, dtype=float) / gamma)


def packet_error_probability(snr: ArrayLike, waterfall_threshold: float) -> NDArray[np.float64]:
    """Probability that one transmission of a message fails: q = 1 - exp(-m N0 b / (P g)) = 1 - exp(-m/SNR).

    Args:
        snr: linear SNR P g / (N0 b) on the band used.
        waterfall_threshold: m (linear); m = 0 gives q = 0.
    """
    s = np.asarray(snr, dtype=float)
    return -np.expm1(-waterfall_threshold / s)


def sample_attempts(rng: np.random.Generator, q: float, max_retransmissions: int) -> tuple[int, bool]:
    """Transmission attempts of one message whose every attempt fails independently with probability q.

    The number of attempts until the first success is geometric, P(a) = q^(a-1) (1-q), a >= 1. At most
    ``1 + max_retransmissions`` attempts are made; if they all fail the message is lost.

    Returns:
        ``(attempts, delivered)``: attempts made (each costs one airtime) and whether the last succeeded.
        q <= 0 gives ``(1, True)`` and q >= 1 gives ``(1 + max_retransmissions, False)`` without a draw.
    """
    cap = 1 + max_retransmissions
    if q <= 0.0:
        return 1, True
    if q >= 1.0:
        return cap, False
    a = int(rng.geometric(1.0 - q))
    return (cap, False) if a > cap else (a, True)


@overload
def message_bits(payload_bytes: int, header_bytes: int) -> int: ...


@overload
def message_bits(payload_bytes: NDArray[np.int64], header_bytes: int) -> NDArray[np.int64]: ...


def message_bits(payload_bytes: int | NDArray[np.int64], header_bytes: int) -> int | NDArray[np.int64]:
    """Bits on the air for one message, or for each of an array of payloads: 8 (payload bytes + header
    bytes)."""
    if isinstance(payload_bytes, np.ndarray):
        return 8 * (payload_bytes.astype(np.int64) + int(header_bytes))
    return 8 * (int(payload_bytes) + int(header_bytes))


def airtime_s(bits: int, rate_bps: float) -> float:
    """Seconds to send ``bits`` at ``rate_bps`` bit/s (inf at a rate of 0)."""
    return bits / rate_bps if rate_bps > 0.0 else math.inf


def counter_attempts(
    keys: NDArray[np.uint64], q: ArrayLike, max_retransmissions: int
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Attempts of many messages at once, each attempt failing independently with probability ``q``:
    attempt a of message i fails when number a of its counter stream ``keys[i]`` is below ``q[i]``
    (:mod:`fedwave.counter_rng`). At most ``1 + max_retransmissions`` attempts; q <= 0 always arrives at
    the first, q >= 1 never arrives.

    Returns:
        ``(attempts, delivered)`` per message.
    """
    cap = 1 + int(max_retransmissions)
    u = uniforms(np.asarray(keys, dtype=np.uint64)[:, None], np.arange(cap))
    ok = u >= np.asarray(q, dtype=float).reshape(-1, 1)
    delivered = np.asarray(ok.any(axis=1), dtype=bool)
    return np.where(delivered, ok.argmax(axis=1) + 1, cap).astype(np.int64), delivered
