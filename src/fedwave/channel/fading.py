"""Random channel variations: log-normal shadowing (once per UE) and small-scale block fading.

Fading is expressed as the power gain |h|^2 with mean 1, so that averaging over the fading leaves the
large-scale gain (path loss and shadowing) unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fedwave.counter_rng import halves, uniforms, word_halves, words


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


#: Bits of a 32-bit half that make a Rayleigh block's uniform: a float32's mantissa.
_RAYLEIGH_BITS = 23


def log_complements(h: NDArray[np.uint32]) -> NDArray[np.float32]:
    """``log(1 - u)`` (float32, <= 0) for the uniforms ``u = (h >> 9) / 2^23`` of the 32-bit words ``h``:
    the top 23 bits are placed in the mantissa of a float32 ``y = 1 + u`` in [1, 2) and ``1 - u = 2 - y``
    is exact, at least 2^-23, so ``-log(1 - u)`` is an Exp(1) draw of at most 15.94. ``h`` is overwritten
    and its memory returned as the result."""
    h >>= np.uint32(32 - _RAYLEIGH_BITS)
    h |= np.uint32(0x3F800000)  # sign 0, exponent 0: 1 + u
    v = h.view(np.float32)
    np.subtract(np.float32(2.0), v, out=v)
    np.log(v, out=v)
    return v


def counter_fading_power(
    keys: ArrayLike, blocks: ArrayLike, model: str, k_factor: float = 0.0
) -> NDArray[np.float64]:
    """Fading powers |h|^2 (linear, mean 1) of blocks ``blocks`` of the counter streams ``keys``
    (:mod:`fedwave.counter_rng`; the two broadcast like :func:`~fedwave.counter_rng.uniforms`).

    Rayleigh: block j uses the 32-bit half ``j mod 2`` (0 the low half) of the stream's number ``j // 2``; its
    top 23 bits give ``u`` and |h|^2 = -log(1 - u) ~ Exp(1), computed in float32 (:func:`log_complements`:
    half a SplitMix word and a float32 logarithm per block instead of a word and a float64 logarithm). Its
    largest value is 15.94 (an Exp(1) draw exceeds that with probability 1.2 x 10^-7); it is 0 with
    probability 2^-23 (a block that carries nothing, as a deep fade would carry almost nothing). Over all 2^23
    values of ``u`` NumPy's vectorised float32 ``log`` (AVX2 and AVX-512 alike) is within 3.8 float32 ulps of
    the exact logarithm, and the draws' mean is 1 - 1.06 x 10^-6; NumPy's portable code (``--portable``) is
    within an ulp and gives other last bits. Rician: block j uses the stream's numbers 2j and 2j+1 (u, v) as
    doubles: with E = -log(1 - u) and theta = 2 pi v, |sqrt(K/(K+1)) + sqrt(1/(K+1)) sqrt(E) e^(i theta)|^2.
    ``none``: 1. Block j's value does not depend on which other blocks are asked for.
    """
    if model not in FADING_MODELS:
        raise ValueError(f"unknown fading model {model!r}; known: {sorted(FADING_MODELS)}")
    j = np.asarray(blocks, dtype=np.int64)
    k = np.asarray(keys, dtype=np.uint64)
    if model == "none":
        return np.ones(np.broadcast_shapes(k.shape, j.shape))
    if model == "rayleigh":
        z = words(k, j >> 1)
        half = np.broadcast_to(j & 1, z.shape)[..., None]  # 0: the low half, 1: the high one
        h = np.take_along_axis(halves(z), half, axis=-1)[..., 0].copy()
        return np.negative(log_complements(h), dtype=np.float64)
    e = -np.log(1.0 - uniforms(k, 2 * j))  # 1 - u is exact on u's 2^-53 grid
    theta = 2.0 * np.pi * uniforms(k, 2 * j + 1)
    r = np.sqrt(e / (k_factor + 1.0))
    los = np.sqrt(k_factor / (k_factor + 1.0))
    return np.asarray((los + r * np.cos(theta)) ** 2 + (r * np.sin(theta)) ** 2, dtype=np.float64)


def counter_fading_run(
    keys: NDArray[np.uint64], first: NDArray[np.int64], count: int, model: str, k_factor: float = 0.0
) -> NDArray[np.float32] | NDArray[np.float64]:
    """Fading powers of blocks ``first[r] .. first[r] + count - 1`` of the counter streams ``keys[r]``,
    laid out (count, streams): the values of :func:`counter_fading_power` of those blocks. With even
    ``first`` and ``count`` Rayleigh's words are drawn by one broadcast addition
    (:func:`~fedwave.counter_rng.word_halves`) and returned as float32 (the float32 values that function
    widens to float64); otherwise, and for the other models, as float64."""
    k = np.asarray(keys, dtype=np.uint64).reshape(-1)
    j0 = np.asarray(first, dtype=np.int64).reshape(-1)
    if model != "rayleigh" or count % 2 or np.any(j0 & 1):
        return counter_fading_power(k[None, :], j0[None, :] + np.arange(count)[:, None], model, k_factor)
    lv = rayleigh_log_run(k, j0 >> 1, count // 2)
    x = np.empty((count // 2, 2, k.size), dtype=np.float32)
    np.negative(lv.transpose(0, 2, 1), out=x)
    return x.reshape(count, k.size)


def rayleigh_log_run(
    keys: NDArray[np.uint64], first_word: NDArray[np.int64], count: int
) -> NDArray[np.float32]:
    """Minus the Rayleigh powers of blocks ``2 first_word[r] .. 2 (first_word[r] + count) - 1`` of the
    counter streams ``keys[r]``, laid out (count, streams, 2): ``[t, r, h]`` is ``log(1 - u)`` of block
    ``2 (first_word[r] + t) + h``, i.e. exactly ``-counter_fading_power`` of that block (float32)."""
    return log_complements(word_halves(keys, first_word, count))
