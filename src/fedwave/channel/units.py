"""Unit helpers: decibels, dBm and watts, and the thermal noise power of a band.

Conventions used throughout fedwave: powers in W (linear) or dBm, gains and losses in dB (a gain of
``-x`` dB is a loss of ``x`` dB), bandwidths in Hz, noise spectral densities in dBm/Hz or W/Hz.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def db_to_linear(db: ArrayLike) -> NDArray[np.float64]:
    """Linear power ratio of ``db`` decibels: 10^(dB/10)."""
    return np.power(10.0, np.asarray(db, dtype=float) / 10.0)


def linear_to_db(ratio: ArrayLike) -> NDArray[np.float64]:
    """Decibels of a linear power ratio: 10 log10(ratio). A ratio of 0 gives -inf."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(ratio, dtype=float))


def dbm_to_watt(dbm: ArrayLike) -> NDArray[np.float64]:
    """Power in W of a level in dBm (0 dBm = 1 mW; 23 dBm ≈ 0.2 W)."""
    return np.power(10.0, (np.asarray(dbm, dtype=float) - 30.0) / 10.0)


def watt_to_dbm(watt: ArrayLike) -> NDArray[np.float64]:
    """Level in dBm of a power in W."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(watt, dtype=float)) + 30.0


def noise_psd_w_per_hz(noise_psd_dbm_hz: float, noise_figure_db: float = 0.0) -> float:
    """Noise power spectral density N0 in W/Hz seen by a receiver.

    Args:
        noise_psd_dbm_hz: thermal noise density in dBm/Hz (-174 dBm/Hz at 290 K).
        noise_figure_db: the receiver's noise figure in dB, added to the density.
    """
    return float(dbm_to_watt(noise_psd_dbm_hz + noise_figure_db))


def noise_power_w(noise_psd_w_hz: float, bandwidth_hz: ArrayLike) -> NDArray[np.float64]:
    """Noise power in W over ``bandwidth_hz`` Hz: N0 * b."""
    return noise_psd_w_hz * np.asarray(bandwidth_hz, dtype=float)
