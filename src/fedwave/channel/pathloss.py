"""Large-scale path-loss models, in a registry by name.

Every model maps distances in m to a loss in dB (positive: the received power is lower by that many dB).
Register a new model with :func:`register_pathloss`; configs name it in ``cell.pathloss.model``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Speed of light in m/s.
SPEED_OF_LIGHT_M_S = 299_792_458.0


class PathLossParams(Protocol):
    """The parameters a path-loss model may read (``cell.pathloss`` in the config)."""

    exponent: float
    reference_distance_m: float
    reference_loss_db: float


#: ``f(distance_m, params, carrier_hz) -> loss_db``.
PathLossFn = Callable[[NDArray[np.float64], PathLossParams, float], NDArray[np.float64]]

PATHLOSS_MODELS: dict[str, PathLossFn] = {}


def register_pathloss(name: str) -> Callable[[PathLossFn], PathLossFn]:
    """Decorator adding ``f(distance_m, params, carrier_hz) -> loss_db`` to :data:`PATHLOSS_MODELS`."""

    def add(fn: PathLossFn) -> PathLossFn:
        if name in PATHLOSS_MODELS:
            raise ValueError(f"path-loss model {name!r} is already registered")
        PATHLOSS_MODELS[name] = fn
        return fn

    return add


@register_pathloss("tr36814")
def tr36814_db(
    distance_m: NDArray[np.float64], params: PathLossParams, carrier_hz: float
) -> NDArray[np.float64]:
    """3GPP TR 36.814 macro-cell loss in dB: 128.1 + 37.6 log10(d / 1 km), d in m."""
    return 128.1 + 37.6 * np.log10(distance_m / 1000.0)


@register_pathloss("free_space")
def free_space_db(
    distance_m: NDArray[np.float64], params: PathLossParams, carrier_hz: float
) -> NDArray[np.float64]:
    """Friis free-space loss in dB at ``carrier_hz``: 20 log10(4 pi d f / c), d in m, f in Hz."""
    return 20.0 * np.log10(4.0 * np.pi * distance_m * carrier_hz / SPEED_OF_LIGHT_M_S)


@register_pathloss("power_law")
def power_law_db(
    distance_m: NDArray[np.float64], params: PathLossParams, carrier_hz: float
) -> NDArray[np.float64]:
    """Plain d^-alpha loss in dB: L0 + 10 alpha log10(d / d0).

    ``L0 = params.reference_loss_db`` (dB) at ``d0 = params.reference_distance_m`` (m),
    ``alpha = params.exponent``. The config defaults (128.1 dB at 1000 m, alpha 3.76) reproduce TR 36.814.
    """
    return params.reference_loss_db + 10.0 * params.exponent * np.log10(
        distance_m / params.reference_distance_m
    )


def pathloss_db(
    model: str, distance_m: ArrayLike, params: PathLossParams, carrier_hz: float = 2e9
) -> NDArray[np.float64]:
    """Loss in dB of the registered ``model`` at each distance (m), carrier ``carrier_hz`` (Hz)."""
    try:
        fn = PATHLOSS_MODELS[model]
    except KeyError:
        raise ValueError(f"unknown path-loss model {model!r}; known: {sorted(PATHLOSS_MODELS)}") from None
    return np.asarray(fn(np.asarray(distance_m, dtype=float), params, float(carrier_hz)), dtype=float)
