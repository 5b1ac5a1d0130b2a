"""Counter-based random streams: number ``i`` of a stream is a pure function of (stream key, i).

The per-link streams of the clock (fading, packet errors, pilots) are counter-based, so that the
simulated clock can draw for thousands of links at once (numpy over UEs) and still give every link the
same numbers as a one-link-at-a-time simulation. A stream is named like a :mod:`fedwave.rng` stream, by
``(seed, *keys)``; its 64-bit key is ``derive_seed`` of the leading keys folded with the trailing ones
(ints or strings) by a bijective 64-bit mixer (the SplitMix64 finaliser), and its i-th number is the
mixer applied to ``key + (i + 1) * 0x9E3779B97F4A7C15`` (the SplitMix64 sequence started at the key). The
top 53 bits give a double in [0, 1) (:func:`uniforms`); Rayleigh fading uses each number's two 32-bit
halves (:func:`word_halves`), one per coherence block.

Only integer arithmetic is involved, so the uniforms are the same on every machine; what is computed
from them (logarithms, square roots) is as portable as NumPy's float functions.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fedwave.rng import Key, derive_seed

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1
_TO_UNIT = 2.0**-53


def _mix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser, in place on ``z`` (a uint64 array) and returned."""
    t = np.right_shift(z, np.uint64(30))
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _M1, out=z)
    np.right_shift(z, np.uint64(27), out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _M2, out=z)
    np.right_shift(z, np.uint64(31), out=t)
    np.bitwise_xor(z, t, out=z)
    return z


@lru_cache(maxsize=4096)
def _string_word(s: str) -> int:
    return derive_seed(0, "counter-key", s)


def _word(value: Key) -> int:
    if isinstance(value, str):
        return _string_word(value)
    return int(value) & _MASK


def fold_keys(base: ArrayLike, *columns: ArrayLike | Key) -> NDArray[np.uint64]:
    """Fold key columns into 64-bit stream keys: ``k <- mix(k ^ mix(v + golden))`` for each column.

    Args:
        base: the keys so far (uint64, any shape that broadcasts with the columns).
        columns: one value or one array of ints per key position (a string is hashed to a word).

    Distinct values in one position give distinct keys (every step is a bijection of 64-bit words).
    """
    k = np.array(base, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in columns:
            if isinstance(col, (str, int, np.integer)):
                v = np.array(_word(col if isinstance(col, str) else int(col)), dtype=np.uint64)
            else:
                arr = np.asarray(col)
                if arr.dtype.kind not in "iu":
                    raise TypeError(f"stream key columns must be integers or strings, got {arr.dtype}")
                v = arr.astype(np.int64).view(np.uint64) if arr.dtype.kind == "i" else arr.astype(np.uint64)
            k = _mix(k ^ _mix(np.atleast_1d(v) + _GOLDEN))  # fresh arrays: mixed in place
    return np.atleast_1d(k)


def stream_key(seed: int, *keys: Key) -> int:
    """The 64-bit key of the counter stream ``(seed, *keys)``: the leading strings name the purpose and
    go through :func:`fedwave.rng.derive_seed`; from the first int on, the keys are folded in."""
    head = 0
    while head < len(keys) and isinstance(keys[head], str):
        head += 1
    return int(fold_keys(derive_seed(seed, *keys[:head]), *keys[head:])[0])


def stream_keys(seed: int, purpose: Sequence[str], rows: Sequence[tuple[Key, ...]]) -> NDArray[np.uint64]:
    """The keys of the streams ``(seed, *purpose, *row)`` for each row (rows of equal length): the same
    as :func:`stream_key` of each, computed at once when a row's keys are all ints."""
    if not rows:
        return np.zeros(0, dtype=np.uint64)
    width = len(rows[0])
    if any(len(r) != width for r in rows) or not all(isinstance(v, int) for r in rows for v in r):
        return np.array([stream_key(seed, *purpose, *r) for r in rows], dtype=np.uint64)
    cols = np.array(rows, dtype=np.int64).reshape(len(rows), width)
    return column_keys(seed, purpose, *(cols[:, j] for j in range(width)))


def column_keys(seed: int, purpose: Sequence[str], *columns: ArrayLike | int) -> NDArray[np.uint64]:
    """The keys of the streams ``(seed, *purpose, c0[i], c1[i], ...)`` for int columns (arrays that
    broadcast, or ints), as :func:`stream_key` would give them one by one."""
    return fold_keys(np.uint64(derive_seed(seed, *purpose)), *columns)


def uniforms(keys: ArrayLike, index: ArrayLike) -> NDArray[np.float64]:
    """Numbers ``index`` (ints >= 0) of the streams ``keys``, as doubles in [0, 1): ``keys`` and ``index``
    broadcast (e.g. keys of shape (n, 1) and indices of shape (m,) give an (n, m) array; a single key and
    index give shape (1,))."""
    return _to_unit(_words53(keys, index))


def _to_unit(z: NDArray[np.uint64] | NDArray[np.int64]) -> NDArray[np.float64]:
    u = z.astype(np.float64)
    u *= _TO_UNIT
    return u


def word_halves(keys: NDArray[np.uint64], first: NDArray[np.int64], count: int) -> NDArray[np.uint32]:
    """The two 32-bit halves of numbers ``first[r] .. first[r] + count - 1`` of the streams ``keys[r]``,
    laid out (count, streams, 2): ``[t, r, 0]`` the low half of number ``first[r] + t``, ``[t, r, 1]`` its
    high half; with one broadcast addition for the counters. Bit for bit the halves of
    :func:`words` of the same numbers.

    Args:
        keys: stream keys (uint64), shape (streams,).
        first: each stream's first number (ints >= 0), shape (streams,).
        count: numbers per stream.
    """
    k = np.asarray(keys, dtype=np.uint64).reshape(-1)
    f = np.asarray(first, dtype=np.int64).reshape(-1)
    if f.size and int(f.min()) < 0:
        raise ValueError("stream indices must be >= 0")
    with np.errstate(over="ignore"):
        # number i of stream k is mix(k + (i + 1) golden): (first + 1) golden + k per stream, then
        # t * golden per row, all modulo 2^64
        base = (f.astype(np.uint64) + np.uint64(1)) * _GOLDEN + k
        step = np.arange(count, dtype=np.uint64) * _GOLDEN
        z = _mix(np.add(step[:, None], base[None, :]))
    return halves(z)


def halves(z: NDArray[np.uint64]) -> NDArray[np.uint32]:
    """The low and high 32 bits of each word of ``z``, as a new last axis of length 2 (a view of ``z`` on
    a little-endian machine, :func:`halves_by_arithmetic` on others)."""
    if sys.byteorder == "little":
        return z.view(np.uint32).reshape((*z.shape, 2))
    return halves_by_arithmetic(z)


def halves_by_arithmetic(z: NDArray[np.uint64]) -> NDArray[np.uint32]:
    """:func:`halves` by masks and shifts, whatever the machine's byte order."""
    low = (z & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return np.stack([low, (z >> np.uint64(32)).astype(np.uint32)], axis=-1)


def words(keys: ArrayLike, index: ArrayLike) -> NDArray[np.uint64]:
    """Numbers ``index`` (ints >= 0) of the streams ``keys`` as whole 64-bit words (``keys`` and ``index``
    broadcast as in :func:`uniforms`)."""
    k = np.asarray(keys, dtype=np.uint64)
    i = np.asarray(index, dtype=np.int64)
    if i.size and int(i.min()) < 0:
        raise ValueError("stream indices must be >= 0")
    with np.errstate(over="ignore"):
        z = i.astype(np.uint64)
        z += np.uint64(1)
        z *= _GOLDEN
        return _mix(np.add(k, z).reshape(np.broadcast_shapes(k.shape, i.shape) or (1,)))


def _words53(keys: ArrayLike, index: ArrayLike) -> NDArray[np.uint64]:
    """The top 53 bits of numbers ``index`` of the streams ``keys`` (broadcast), as uint64."""
    z = words(keys, index)
    z >>= np.uint64(11)
    return z
