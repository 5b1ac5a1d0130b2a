"""How long a message takes on a fading link: coherence blocks with per-block rate adaptation, or one
fading draw per attempt with an outage rule.

Coherence blocks (``fading.block: coherence``). Time is cut into blocks of ``T_c`` seconds counted from
the start of the link's first transmission; block j has its own fading power ``x_j`` (i.i.d., mean 1),
drawn from the link's stream. The transmitter knows the channel and sends at the block's Shannon rate
``r_j = b log2(1 + snr x_j / Gamma)``, so block j carries ``r_j T_c`` bits. A message of ``L`` bits ends in
the first block where the carried bits reach ``L``; its airtime averages the fading over the blocks it
spans. A block with ``x_j = 0`` carries nothing and is simply waited out: no rate is ever inverted, so
no result depends on a floor on ``|h|^2``. With several receivers (a broadcast) block j carries what the
worst receiver can decode, ``min_k r_jk T_c``.

The running capacity is computed group by group: blocks ``8g .. 8g+7`` of a link form group g, whose capacity
is ``b T_c log2(f_8g f_8g+1 ... f_8g+7)`` with ``f_j = 1 + (snr / Gamma) x_j`` multiplied in order, and the
running capacity at the end of group g is the sum of the groups' capacities in order. Inside the group where a
message ends, the running capacity after block ``8g + i`` is the sum before the group plus ``b T_c log2(f_8g
... f_8g+i)``. That is the same quantity as the sum of per-block capacities (a product of factors instead of a
sum of their logarithms, equal up to rounding), with one logarithm per group instead of one per block (NumPy
computed float64 logarithms one value at a time on an AVX2 host, and the two per block, the Rayleigh power's
and the rate's ``log2``, were the largest costs of a block in a ``fedwave bench clock --ues 10000`` round; the
Rayleigh power is now a float32 logarithm of half a stream word:
:func:`~fedwave.channel.fading.counter_fading_power`). Each factor is below 2^127 (mean SNRs over 10^33 are
refused: :data:`MAX_SNR`), so a group's product never overflows.

One draw per attempt (``fading.block: round``). Attempt a draws ``x_a``; if ``snr x_a`` is at least the
outage threshold ``snr_th`` the message is sent at ``r(snr x_a)`` and arrives; otherwise the attempt is in
outage: it is sent at the lowest rate the link supports, ``r(snr_th)``, and fails. So every attempt
lasts at most ``L / r(snr_th)`` seconds.

All are pure functions of their arguments and the link's generator(s).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedwave.channel.fading import counter_fading_run, rayleigh_log_run, sample_fading_power
from fedwave.channel.link import shannon_rate_bps
from fedwave.channel.units import db_to_linear

#: Blocks per group of the running capacity (module docstring).
GROUP = 8

#: Largest mean SNR over the gap (linear) a block link accepts: 330 dB, far above any physical link but
#: not above the -400 dBm/Hz noise sometimes set to make a channel noise-free. Rayleigh powers stay below
#: 16 (u has 23 bits), Rician ones below 50 (u is on the 2^-53 grid), and a Gauss-Markov power exceeds
#: 10^5 with probability e^-100000, so each factor 1 + s x is below 2^127 and a group's product of 8 below
#: 2^1016.
MAX_SNR = 1e33

#: Most blocks drawn at once when extending a link's fading sequence.
_MAX_CHUNK = 1 << 16

#: ``source(n)``: the fading powers of the link's next ``n`` blocks, shape ``(n, receivers)`` (float64, or
#: float32 for counter-stream Rayleigh blocks).
FadingSource = Callable[[int], NDArray[np.floating[Any]]]


def _check_snr(snr: NDArray[np.float64]) -> None:
    # one pass for the usual case (a link per call on the SimPy path); the message only on failure
    if np.all(snr > 0) and np.all(snr <= MAX_SNR):
        return
    if not (np.all(np.isfinite(snr)) and np.all(snr > 0)):
        raise ValueError(f"mean SNR must be finite and positive, got {snr.tolist()[:5]}")
    raise ValueError(
        f"mean SNR {float(snr.max()):.3g} (linear) is above {MAX_SNR:g} (330 dB): check the powers, "
        "gains and noise that gave it"
    )


def gain_factors(x: NDArray[np.floating[Any]], s: NDArray[np.float64]) -> NDArray[np.float64]:
    """``f = 1 + s x`` per block (float64): ``x`` fading powers (blocks, links; float32 values are widened
    exactly), ``s`` each link's mean SNR over the gap (linear)."""
    f = np.multiply(x, s, dtype=np.float64)
    f += 1.0
    return f


def group_capacities(f: NDArray[np.float64], bits_per_log2: NDArray[np.float64]) -> NDArray[np.float64]:
    """Bits each group of :data:`GROUP` blocks carries: ``c log2(f_0 f_1 ... f_7)``, the factors
    multiplied in block order. ``f``: (blocks, links) with blocks a multiple of :data:`GROUP`;
    ``bits_per_log2``: ``c = b T_c`` per link (Hz s). Returns (groups, links)."""
    if f.shape[1] == 1:  # one link: the same products, from one cumulative product per group
        p = np.cumprod(f.reshape(-1, GROUP), axis=1, dtype=np.float64)[:, -1:]
    else:
        p = f[0::GROUP].copy()
        for i in range(1, GROUP):
            p *= f[i::GROUP]
    return _capacities(p, bits_per_log2)


def factor_group_capacities(
    rows: Sequence[NDArray[np.floating[Any]]], s: NDArray[np.float64], bits_per_log2: NDArray[np.float64]
) -> NDArray[np.float64]:
    """:func:`group_capacities` of the factors ``1 + s x``, bit for bit, without forming every factor at
    once: ``rows[i]`` holds block i of every group (groups, links), and each group's factors are formed
    one block row at a time and multiplied in block order. ``rows`` may hold the negated powers with
    ``s`` negated: ``(-x)(-s)`` is ``x s`` exactly."""
    p = gain_factors(rows[0], s)
    t = np.empty_like(p)
    for i in range(1, GROUP):
        np.multiply(rows[i], s, out=t)
        t += 1.0
        p *= t
    return _capacities(p, bits_per_log2)


def _capacities(p: NDArray[np.float64], bits_per_log2: NDArray[np.float64]) -> NDArray[np.float64]:
    np.log2(p, out=p)
    p *= bits_per_log2
    return p


def running_sums(carry: NDArray[np.float64], c: NDArray[np.float64]) -> NDArray[np.float64]:
    """Running capacity at each group's end: ``carry`` plus the groups' capacities ``c`` (groups, links)
    added one by one, in order. Few links (a :class:`BlockLink`): ``np.cumsum``, the same additions in
    the same order; many: one vector addition per group (``cumsum`` down the columns of a wide array
    took about 13 ns a value here)."""
    if c.shape[0] > 8 * c.shape[1]:
        return np.cumsum(np.concatenate([np.reshape(carry, (1, -1)), c]), axis=0)[1:]
    out = np.empty_like(c)
    acc = np.array(carry, dtype=np.float64, copy=True)
    for g in range(c.shape[0]):
        acc += c[g]
        out[g] = acc
    return out


def within_group(
    f: NDArray[np.float64], before: NDArray[np.float64], bits_per_log2: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Running capacity after each block of one group per link: ``before + c log2(f_0 ... f_i)``, the
    same products as :func:`group_capacities` (so the last row equals that group's running sum).
    ``f``: (GROUP, links); ``before``: the running capacity before the group. Returns (GROUP, links)."""
    p = np.cumprod(f, axis=0, dtype=np.float64)
    np.log2(p, out=p)
    p *= bits_per_log2
    p += before
    return p


class BlockLink:
    """A link whose fading is redrawn every ``block_s`` seconds, rate adapted per block.

    Args:
        snr_mean: mean SNR (linear, fading averaged out) of each receiver on ``bandwidth_hz``.
        bandwidth_hz: the band used (Hz).
        gap_db: SNR gap to capacity (dB).
        block_s: coherence block length (s).
        fading: fading model name (``rayleigh``, ``rician``, ``none``).
        rician_k: Rician K (linear).
        rngs: one generator per receiver: i.i.d. draws per block; or None with ``source``.
        source: instead of ``rngs``, where the blocks' fading powers come from, in order (a counter
            stream: :func:`counter_source`; a time-correlated process:
            :class:`~fedwave.channel.gaussmarkov.GaussMarkovFading`).
        offset_s: seconds of the first block already elapsed when the link starts (blocks on an absolute
            time grid), in ``[0, block_s)``.

    Successive :meth:`send` calls continue in the same block sequence (a retransmission starts where the
    previous attempt ended). The running capacity is the grouped one of the module docstring, so it does
    not depend on how many blocks are drawn at a time, and :func:`uplink_block_airtimes` gives the same
    numbers for many links at once.

    Raises:
        ValueError: no receiver, mismatched lengths, a non-positive block length, or a mean SNR that is
            not finite and positive (the link could never carry a bit) or above :data:`MAX_SNR`.
    """

    def __init__(
        self,
        snr_mean: Sequence[float] | NDArray[np.float64],
        bandwidth_hz: float,
        gap_db: float,
        block_s: float,
        fading: str,
        rician_k: float,
        rngs: Sequence[np.random.Generator] | None,
        *,
        source: FadingSource | None = None,
        offset_s: float = 0.0,
    ) -> None:
        snr = np.asarray(snr_mean, dtype=float).reshape(-1)
        if (rngs is None) == (source is None):
            raise ValueError("give the receivers' generators or a fading source, not both or neither")
        if rngs is not None and (snr.size == 0 or snr.size != len(rngs)):
            raise ValueError(
                f"need one generator per receiver, got {snr.size} SNRs and {len(rngs)} generators"
            )
        if snr.size == 0:
            raise ValueError("need at least one receiver")
        if not 0.0 <= offset_s < block_s:
            raise ValueError(f"offset_s must be in [0, block_s={block_s}), got {offset_s}")
        s = snr / float(db_to_linear(gap_db))  # mean SNR over the gap, per receiver
        _check_snr(s)
        if not (math.isfinite(block_s) and block_s > 0):
            raise ValueError(f"block length must be positive and finite, got {block_s} s")
        self.snr_mean = snr
        self.bandwidth_hz = float(bandwidth_hz)
        self.gap_db = float(gap_db)
        self.block_s = float(block_s)
        self.fading = fading
        self.rician_k = float(rician_k)
        self._rngs = list(rngs) if rngs is not None else []
        self._source = source
        self._s = s
        self._c = np.array([self.bandwidth_hz * self.block_s])  # bits per unit of log2, per block
        self._f = np.zeros(0)  # factor 1 + s x of each block (worst receiver)
        self._sums = np.zeros(0)  # running capacity (bits) at the end of each group
        self._offset_s = float(offset_s)
        self._t = float(offset_s)  # link time (s from the start of block 0) where the next send starts
        self._pos_bits: float | None = None  # running capacity (bits) at _t; None until the first send

    @property
    def blocks_drawn(self) -> int:
        """How many blocks' fading has been drawn so far."""
        return int(self._f.size)

    def _extend(self, need_bits: float) -> None:
        n = chunk_blocks(need_bits, float(self.snr_mean.min()), self.bandwidth_hz, self.gap_db, self.block_s)
        if self._source is not None:
            x = np.asarray(self._source(n)).reshape(n, self.snr_mean.size)  # float32 or float64
        else:
            x = np.stack(
                [sample_fading_power(rng, n, self.fading, self.rician_k) for rng in self._rngs], axis=1
            )
        f = gain_factors(x, self._s[None, :]).min(axis=1, keepdims=True)
        carry = self._sums[-1:] if self._sums.size else np.zeros(1)
        sums = running_sums(carry, group_capacities(f, self._c))[:, 0]
        self._f = np.concatenate([self._f, f[:, 0]])
        self._sums = np.concatenate([self._sums, sums])

    def _in_group(self, g: int) -> NDArray[np.float64]:
        """Running capacity after each block of group ``g``."""
        before = np.array([float(self._sums[g - 1]) if g else 0.0])
        return within_group(self._f[GROUP * g : GROUP * (g + 1), None], before, self._c)[:, 0]

    def send(self, bits: float) -> float:
        """Seconds to send ``bits`` bits from the current position; the position moves to the end."""
        if not bits > 0:
            return 0.0
        if self._pos_bits is None:
            if self._offset_s > 0.0 and not self._f.size:
                self._extend(float(bits))
            self._pos_bits = (
                (float(self._in_group(0)[0]) / self.block_s) * self._offset_s if self._offset_s else 0.0
            )
        target = self._pos_bits + float(bits)
        while not (self._sums.size and self._sums[-1] >= target):
            self._extend(target - (float(self._sums[-1]) if self._sums.size else 0.0))
        g = int(np.searchsorted(self._sums, target, side="left"))
        caps = self._in_group(g)
        i = int(np.count_nonzero(caps < target))  # < GROUP: the group's last value is _sums[g] >= target
        before = float(caps[i - 1]) if i else (float(self._sums[g - 1]) if g else 0.0)
        t_end = end_time_s(GROUP * g + i, target, before, float(caps[i]) - before, self.block_s)
        elapsed = t_end - self._t
        self._t, self._pos_bits = t_end, target
        return elapsed


def end_time_s(block: Any, target_bits: Any, before_bits: Any, block_bits: Any, block_s: float) -> Any:
    """Link time (s from the start of block 0) at which the running capacity reaches ``target_bits``:
    ``block`` is the first block whose running capacity reaches it, ``before_bits`` the running capacity
    before it and ``block_bits`` the block's own (the difference of the two). Scalars or arrays; the one
    formula of :class:`BlockLink` and :func:`uplink_block_airtimes`."""
    return block * block_s + (target_bits - before_bits) / (block_bits / block_s)


def chunk_blocks(need_bits: float, snr_low: float, bandwidth_hz: float, gap_db: float, block_s: float) -> int:
    """How many blocks to draw next for ``need_bits`` more bits, a multiple of :data:`GROUP` (a sizing
    guess only: the blocks' values do not depend on it). The rate at a tenth of the lowest mean SNR is
    below the mean rate of the usual fading models."""
    per_block = max(float(shannon_rate_bps(bandwidth_hz, snr_low / 10.0, gap_db)) * block_s, 1e-300)
    n = int(min(_MAX_CHUNK, max(16.0, 1.25 * need_bits / per_block + 4.0)))
    return -(-n // GROUP) * GROUP


def counter_source(keys: NDArray[np.uint64], fading: str, rician_k: float) -> FadingSource:
    """A :data:`FadingSource` reading blocks 0, 1, 2, ... of the counter streams ``keys`` (one per
    receiver; :func:`~fedwave.channel.fading.counter_fading_run`, the values of
    :func:`~fedwave.channel.fading.counter_fading_power`)."""
    k = np.asarray(keys, dtype=np.uint64).reshape(-1)
    pos = [0]

    def source(n: int) -> NDArray[np.floating[Any]]:
        first = np.full(k.size, pos[0], dtype=np.int64)
        pos[0] += n
        return counter_fading_run(k, first, n, fading, rician_k)

    return source


def uplink_block_airtimes(
    keys: NDArray[np.uint64],
    snr_mean: NDArray[np.float64],
    bandwidth_hz: NDArray[np.float64],
    bits: NDArray[np.float64],
    attempts: NDArray[np.int64],
    *,
    gap_db: float,
    block_s: float,
    fading: str,
    rician_k: float,
    max_elements: int = 1 << 19,
) -> NDArray[np.float64]:
    """Airtime (s) of each attempt of many coherence-block links at once, each starting at a block
    boundary: link i sends ``bits[i]`` bits ``attempts[i]`` times in a row on its counter stream
    ``keys[i]``. Returns an array (links, max attempts), 0 past a link's last attempt; row i equals what
    :class:`BlockLink` with :func:`counter_source` gives (the same draws and the same arithmetic).

    Links are taken in tiles of rows, each tile drawing about ``max_elements`` blocks at a time, laid out
    blocks x links (``python benchmarks/clock_blocks.py --elements 131072,262144,524288,1048576`` gave
    4.3, 3.9, 3.5 and 4.0 ns of CPU time a block on an AVX-512 host: the default is 2^19, a tile of
    16,384 links). That does not change the result: block j's fading is a function of (key, j), and each
    link's running capacity adds its groups one by one, in order, across chunks."""
    n = keys.size
    cap = int(attempts.max()) if n else 0
    out = np.zeros((n, cap))
    if not n or not cap:
        return out
    s = np.asarray(snr_mean, dtype=float) / float(db_to_linear(gap_db))
    _check_snr(s)
    c = np.asarray(bandwidth_hz, dtype=float) * block_s
    rows_per_tile = max(1, max_elements // (4 * GROUP))
    grid = _Grid(gap_db, block_s, fading, rician_k, max_elements)
    for a in range(0, n, rows_per_tile):
        t = slice(a, min(n, a + rows_per_tile))
        low = (float(snr_mean[t].min()), float(bandwidth_hz[t].min()))
        _tile_airtimes(out[t], keys[t], s[t], c[t], bits[t], attempts[t], low, grid)
    return out


@dataclass(frozen=True)
class _Grid:
    """How :func:`uplink_block_airtimes` draws blocks: its keyword arguments."""

    gap_db: float
    block_s: float
    fading: str
    rician_k: float
    max_elements: int


class _Draws:
    """The fading powers of blocks ``first[r] .. first[r] + count - 1`` of links ``keys[r]`` (``first`` and
    ``count`` multiples of :data:`GROUP`). Rayleigh blocks stay as drawn, ``log(1 - u)`` in word order
    (:func:`~fedwave.channel.fading.rayleigh_log_run`; ``sign`` -1), the others as ``counter_fading_run``
    lays them out (``sign`` 1): no pass over the draws is spent on reordering or negating them."""

    def __init__(self, keys: NDArray[np.uint64], first: NDArray[np.int64], count: int, grid: _Grid) -> None:
        self.sign = -1.0 if grid.fading == "rayleigh" else 1.0
        self._draws: NDArray[np.floating[Any]]
        if grid.fading == "rayleigh":
            self._draws = rayleigh_log_run(keys, first >> 1, count // 2)  # (count/2, links, 2)
        else:
            self._draws = counter_fading_run(keys, first, count, grid.fading, grid.rician_k)

    def rows(self) -> list[NDArray[np.floating[Any]]]:
        """Block i of every group (groups, links), times ``sign``, for i < GROUP."""
        if self.sign < 0:
            half = GROUP // 2
            return [self._draws[i // 2 :: half, :, i % 2] for i in range(GROUP)]
        return [self._draws[i::GROUP] for i in range(GROUP)]

    def powers(self, block: NDArray[np.int64], link: NDArray[np.int64]) -> NDArray[np.floating[Any]]:
        """The fading powers of blocks ``block`` (offsets from ``first``) of links ``link`` (broadcast)."""
        if self.sign < 0:
            return -self._draws[block >> 1, link, block & 1]
        return self._draws[block, link]


def _tile_airtimes(
    out: NDArray[np.float64],
    keys: NDArray[np.uint64],
    s: NDArray[np.float64],
    c: NDArray[np.float64],
    bits: NDArray[np.float64],
    attempts: NDArray[np.int64],
    low: tuple[float, float],
    grid: _Grid,
) -> None:
    """:func:`uplink_block_airtimes` of one tile of links (``out`` its rows, a view), with ``s`` their
    mean SNRs over the gap, ``c`` their bits per unit of log2 per block and ``low`` the tile's lowest
    mean SNR and band, for sizing the chunks (the blocks' values do not depend on it)."""
    n = keys.size
    t_prev = np.zeros(n)
    pos = np.zeros(n)  # running capacity at the end of the last attempt sent
    done = np.zeros(n, dtype=np.int64)
    next_block = np.zeros(n, dtype=np.int64)  # a multiple of GROUP
    carry = np.zeros(n)  # running capacity at next_block
    size = bits.astype(float)
    empty = ~(size > 0)  # as BlockLink.send: nothing to send takes 0 s and does not move
    done[empty] = attempts[empty]
    goal = np.where(done < attempts, pos + size, np.inf)  # running capacity that ends the next attempt
    while True:
        rows = np.flatnonzero(done < attempts)
        if not rows.size:
            break
        sel = slice(None) if rows.size == n else rows  # a view while every link is still sending
        need = float(((attempts[sel] - done[sel]) * size[sel] - (carry[sel] - pos[sel])).max())
        guess = chunk_blocks(need, low[0], low[1], grid.gap_db, grid.block_s)
        m = max(GROUP, min(guess, grid.max_elements // rows.size) // GROUP * GROUP)
        draws = _Draws(keys[sel], next_block[sel], m, grid)
        cr = c[sel]
        sums = running_sums(carry[sel], factor_group_capacities(draws.rows(), draws.sign * s[sel], cr))
        r = np.flatnonzero(sums[-1] >= goal[sel])  # links whose attempt ends in this chunk
        while r.size:
            t = rows[r]
            target = goal[t]
            g = (sums[:, r] < target[None, :]).sum(axis=0)  # < groups: the last sum reaches the target
            before_g = np.where(g > 0, sums[np.maximum(g - 1, 0), r], carry[t])
            fg = gain_factors(draws.powers(GROUP * g[None, :] + np.arange(GROUP)[:, None], r[None, :]), s[t])
            caps = within_group(fg, before_g, cr[r])
            i = (caps < target[None, :]).sum(axis=0)  # < GROUP: the last row is sums[g] >= target
            cols = np.arange(r.size)
            before = np.where(i > 0, caps[np.maximum(i - 1, 0), cols], before_g)
            block = next_block[t] + GROUP * g + i
            t_end = end_time_s(block, target, before, caps[i, cols] - before, grid.block_s)
            out[t, done[t]] = t_end - t_prev[t]
            t_prev[t], pos[t] = t_end, target
            done[t] += 1
            goal[t] = np.where(done[t] < attempts[t], target + size[t], np.inf)
            r = r[sums[-1, r] >= goal[t]]  # a retransmission that also ends in this chunk
        carry[sel] = sums[-1]
        next_block[sel] += m


class AttemptLink:
    """A link with one fading draw per transmission attempt and the outage rule (``fading.block: round``).

    Args:
        snr_mean: mean SNR (linear) on ``bandwidth_hz``.
        bandwidth_hz: the band used (Hz).
        gap_db: SNR gap to capacity (dB).
        outage_snr: the outage threshold (linear SNR): below it an attempt fails.
        fading, rician_k: the fading model.
        rng: the link's fading stream (one draw per attempt).
    """

    def __init__(
        self,
        snr_mean: float,
        bandwidth_hz: float,
        gap_db: float,
        outage_snr: float,
        fading: str,
        rician_k: float,
        rng: np.random.Generator,
    ) -> None:
        if not (math.isfinite(snr_mean) and snr_mean > 0):
            raise ValueError(f"mean SNR must be finite and positive, got {snr_mean}")
        if not outage_snr > 0:
            raise ValueError(f"outage threshold must be a positive linear SNR, got {outage_snr}")
        self.snr_mean = float(snr_mean)
        self.bandwidth_hz = float(bandwidth_hz)
        self.gap_db = float(gap_db)
        self.outage_snr = float(outage_snr)
        self.fading = fading
        self.rician_k = float(rician_k)
        self._rng = rng
        self.floor_rate_bps = float(shannon_rate_bps(self.bandwidth_hz, self.outage_snr, self.gap_db))

    def attempt(self, bits: float) -> tuple[float, bool, float]:
        """One attempt at sending ``bits``: ``(seconds, delivered, instantaneous SNR (linear))``."""
        x = float(sample_fading_power(self._rng, 1, self.fading, self.rician_k)[0])
        seconds, _, delivered = outage_airtimes(
            np.array([[x]]),
            np.array([self.snr_mean]),
            np.array([self.bandwidth_hz]),
            np.array([float(bits)]),
            gap_db=self.gap_db,
            outage_snr=self.outage_snr,
        )
        return float(seconds[0, 0]), bool(delivered[0]), self.snr_mean * x


def outage_airtimes(
    fading_power: NDArray[np.float64],
    snr_mean: NDArray[np.float64],
    bandwidth_hz: NDArray[np.float64],
    bits: NDArray[np.float64],
    *,
    gap_db: float,
    outage_snr: float,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    """The outage rule for many links at once (``fading.block: round``): link i's attempt a has fading
    power ``fading_power[i, a]``; attempts go on until the first one whose SNR reaches ``outage_snr``
    (sent at its Shannon rate) or until the columns run out (each failed attempt lasts ``bits`` at the
    rate of ``outage_snr``).

    Returns:
        ``(seconds, attempts, delivered)``: seconds per attempt (links, columns), 0 after the last one;
        attempts made; whether the last arrived.
    """
    x = np.asarray(fading_power, dtype=float)
    snr = snr_mean[:, None] * x
    ok = snr >= outage_snr
    floor = shannon_rate_bps(bandwidth_hz, outage_snr, gap_db)
    rate = shannon_rate_bps(bandwidth_hz[:, None], np.where(ok, snr, outage_snr), gap_db)
    seconds = np.where(ok, bits[:, None] / rate, (bits / floor)[:, None])
    delivered = ok.any(axis=1)
    attempts = np.where(delivered, ok.argmax(axis=1) + 1, x.shape[1]).astype(np.int64)
    seconds[np.arange(x.shape[1])[None, :] >= attempts[:, None]] = 0.0
    return seconds, attempts, delivered
