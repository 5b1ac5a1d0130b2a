"""Random channel variations: log-normal shadowing (once per UE) and small-scale block fading.

Fading is expressed as the power gain |h|^2 with mean 1, so that averaging over the fading leaves the
large-scale gain (path loss and shadowing) unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fedwave.counter_rng import strided_complements, uniforms


def sample_shadowing_db(rng: np.random.Generator, num_ues: int, sigma_db: float) -> NDArray[np.float64]:
    """Log-normal shadowing in dB, N(0, sigma_db^2), one value per UE (a gain: positive is better)."""
    if sigma_db == 0.0:
        return np.zeros(num_ues)
    return rng.normal(0.0, sigma_db, num_ues)


def _rayleigh(rng: np.random.Generator, n: int, k_factor: float) -> NDArray[np.float64]:
    return rng.standard_exponential(n)


def _rician(rng: np.random.Generator, n: int, k_factor: float) -> NDArray[np.float64]:
    # h = sqrt(K/(K+1)) + sqrt(1/(K+1)) * CN(0, 1): E|h|^2 = 1. Draws laid out per UE (n, 2).
    z = rng.standard_normal((n, 2)) * np.sqrt(0.5)
    los = np.sqrt(k_factor / (k_factor + 1.0))
    scatter = np.sqrt(1.0 / (k_factor + 1.0))
    return (los + scatter * z[:, 0]) ** 2 + (scatter * z[:, 1]) ** 2


def _none(rng: np.random.Generator, n: int, k_factor: float) -> NDArray[np.float64]:
    return np.ones(n)


FADING_MODELS: dict[str, Callable[[np.random.Generator, int, float], NDArray[np.float64]]] = {
    "rayleigh": _rayleigh,
    "rician": _rician,
    "none": _none,
}


def sample_fading_power(
    rng: np.random.Generator, num: int, model: str, k_factor: float = 0.0
) -> NDArray[np.float64]:
    """Block-fading power gains |h|^2 (linear, mean 1): ``num`` i.i.d. draws (blocks or UEs).

    A draw may be exactly 0 (a block that carries nothing); nothing downstream divides by it.

    Args:
        rng: the generator of this block's stream.
        num: how many values; value i always comes from the same draws of the stream, whatever ``num``.
        model: ``"rayleigh"`` (|h|^2 ~ Exp(1)), ``"rician"`` (factor ``k_factor``, linear) or ``"none"``.
        k_factor: Rician K, the power ratio of the line-of-sight path to the scattered paths (linear).
    """
    try:
        fn = FADING_MODELS[model]
    except KeyError:
        raise ValueError(f"unknown fading model {model!r}; known: {sorted(FADING_MODELS)}") from None
    return fn(rng, num, k_factor)


def counter_fading_power(
    keys: ArrayLike, blocks: ArrayLike, model: str, k_factor: float = 0.0
) -> NDArray[np.float64]:
    """Fading powers |h|^2 (linear, mean 1) of blocks ``blocks`` of the counter streams ``keys``
    (:mod:`fedwave.counter_rng`; the two broadcast like :func:`~fedwave.counter_rng.uniforms`).

    Block j uses the stream's numbers 2j and 2j+1 (u, v): with E = -log(1 - u) ~ Exp(1) and
    theta = 2 pi v, the scattered part is sqrt(E) e^(i theta) ~ CN(0, 1). Rayleigh: |h|^2 = E (v unused);
    Rician: |sqrt(K/(K+1)) + sqrt(1/(K+1)) sqrt(E) e^(i theta)|^2; ``none``: 1. Block j's value does not
    depend on which other blocks are asked for. ``log(1 - u)`` rather than ``log1p(-u)``: the two agree
    to an ulp or two, 1 - u is exact, and NumPy's ``log`` took 8.8 ns a value here against 16.6 for ``log1p``.
    """
    if model not in FADING_MODELS:
        raise ValueError(f"unknown fading model {model!r}; known: {sorted(FADING_MODELS)}")
    j = np.asarray(blocks, dtype=np.int64)
    k = np.asarray(keys, dtype=np.uint64)
    if model == "none":
        return np.ones(np.broadcast_shapes(k.shape, j.shape))
    e = -np.log(1.0 - uniforms(k, 2 * j))  # 1 - u is exact on u's 2^-53 grid
    if model == "rayleigh":
        return np.asarray(e, dtype=np.float64)
    theta = 2.0 * np.pi * uniforms(k, 2 * j + 1)
    r = np.sqrt(e / (k_factor + 1.0))
    los = np.sqrt(k_factor / (k_factor + 1.0))
    return np.asarray((los + r * np.cos(theta)) ** 2 + (r * np.sin(theta)) ** 2, dtype=np.float64)


def counter_fading_run(
    keys: NDArray[np.uint64], first: NDArray[np.int64], count: int, model: str, k_factor: float = 0.0
) -> NDArray[np.float64]:
    """Fading powers of blocks ``first[r] .. first[r] + count - 1`` of the counter streams ``keys[r]``,
    laid out (count, streams): bit for bit :func:`counter_fading_power` of those blocks, with the
    Rayleigh counters formed by one broadcast addition
    (:func:`~fedwave.counter_rng.strided_complements`)."""
    k = np.asarray(keys, dtype=np.uint64).reshape(-1)
    j0 = np.asarray(first, dtype=np.int64).reshape(-1)
    if model != "rayleigh":
        return counter_fading_power(k[None, :], j0[None, :] + np.arange(count)[:, None], model, k_factor)
    e = strided_complements(k, 2 * j0, count, 2)
    np.log(e, out=e)
    np.negative(e, out=e)
    return e
