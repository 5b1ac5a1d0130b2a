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

One draw per attempt (``fading.block: round``). Attempt a draws ``x_a``; if ``snr x_a`` is at least the
outage threshold ``snr_th`` the message is sent at ``r(snr x_a)`` and arrives; otherwise the attempt is in
outage: it is sent at the lowest rate the link supports, ``r(snr_th)``, and fails. So every attempt
lasts at most ``L / r(snr_th)`` seconds.

Both are pure functions of their arguments and the link's generator(s).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedwave.channel.fading import counter_fading_power, sample_fading_power
from fedwave.channel.link import shannon_rate_bps

#: Most blocks drawn at once when extending a link's fading sequence.
_MAX_CHUNK = 1 << 16

#: ``source(n)``: the fading powers of the link's next ``n`` blocks, shape ``(n, receivers)``.
FadingSource = Callable[[int], NDArray[np.float64]]


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
    previous attempt ended). The arithmetic is that of :func:`end_time_s` on the running sum of the
    blocks' capacities, so it does not depend on how many blocks are drawn at a time, and
    :func:`uplink_block_airtimes` gives the same numbers for many links at once.

    Raises:
        ValueError: no receiver, mismatched lengths, a non-positive block length, or a mean SNR that is
            not finite and positive (the link could never carry a bit).
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
        if not (np.all(np.isfinite(snr)) and np.all(snr > 0)):
            raise ValueError(f"mean SNR must be finite and positive, got {snr.tolist()[:5]}")
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
        self._bits = np.zeros(0)  # bits block j carries (whole block)
        self._cum = np.zeros(0)  # running sum of _bits, summed in order
        self._offset_s = float(offset_s)
        self._t = float(offset_s)  # link time (s from the start of block 0) where the next send starts
        self._pos_bits: float | None = None  # running capacity (bits) at _t; None until the first send

    @property
    def blocks_drawn(self) -> int:
        """How many blocks' fading has been drawn so far."""
        return int(self._bits.size)

    def _extend(self, need_bits: float) -> None:
        n = chunk_blocks(need_bits, float(self.snr_mean.min()), self.bandwidth_hz, self.gap_db, self.block_s)
        if self._source is not None:
            x = np.asarray(self._source(n), dtype=float).reshape(n, self.snr_mean.size)
        else:
            x = np.stack(
                [sample_fading_power(rng, n, self.fading, self.rician_k) for rng in self._rngs], axis=1
            )
        rates = shannon_rate_bps(self.bandwidth_hz, self.snr_mean[None, :] * x, self.gap_db)
        bits = rates.min(axis=1) * self.block_s
        carry = self._cum[-1:] if self._cum.size else np.zeros(1)
        self._cum = np.concatenate([self._cum, np.cumsum(np.concatenate([carry, bits]))[1:]])
        self._bits = np.concatenate([self._bits, bits])

    def send(self, bits: float) -> float:
        """Seconds to send ``bits`` bits from the current position; the position moves to the end."""
        if not bits > 0:
            return 0.0
        if self._pos_bits is None:
            if self._offset_s > 0.0 and not self._bits.size:
                self._extend(float(bits))
            self._pos_bits = (float(self._bits[0]) / self.block_s) * self._offset_s if self._offset_s else 0.0
        target = self._pos_bits + float(bits)
        while not (self._cum.size and self._cum[-1] >= target):
            self._extend(target - (float(self._cum[-1]) if self._cum.size else 0.0))
        k = int(np.searchsorted(self._cum, target, side="left"))
        before = float(self._cum[k - 1]) if k else 0.0
        t_end = end_time_s(k, target, before, float(self._bits[k]), self.block_s)
        elapsed = t_end - self._t
        self._t, self._pos_bits = t_end, target
        return elapsed


def end_time_s(block: Any, target_bits: Any, before_bits: Any, block_bits: Any, block_s: float) -> Any:
    """Link time (s from the start of block 0) at which the running capacity reaches ``target_bits``:
    ``block`` is the first block whose running sum reaches it, ``before_bits`` the running sum before it
    and ``block_bits`` its capacity. Scalars or arrays; the one formula of :class:`BlockLink` and
    :func:`uplink_block_airtimes`."""
    return block * block_s + (target_bits - before_bits) / (block_bits / block_s)


def chunk_blocks(need_bits: float, snr_low: float, bandwidth_hz: float, gap_db: float, block_s: float) -> int:
    """How many blocks to draw next for ``need_bits`` more bits (a sizing guess only: the blocks' values
    do not depend on it). The rate at a tenth of the lowest mean SNR is below the mean rate of the usual
    fading models."""
    per_block = max(float(shannon_rate_bps(bandwidth_hz, snr_low / 10.0, gap_db)) * block_s, 1e-300)
    return int(min(_MAX_CHUNK, max(16.0, 1.25 * need_bits / per_block + 4.0)))


def counter_source(keys: NDArray[np.uint64], fading: str, rician_k: float) -> FadingSource:
    """A :data:`FadingSource` reading blocks 0, 1, 2, ... of the counter streams ``keys`` (one per
    receiver; :func:`~fedwave.channel.fading.counter_fading_power`)."""
    k = np.asarray(keys, dtype=np.uint64).reshape(1, -1)
    pos = [0]

    def source(n: int) -> NDArray[np.float64]:
        j = np.arange(pos[0], pos[0] + n, dtype=np.int64)[:, None]
        pos[0] += n
        return counter_fading_power(k, j, fading, rician_k)

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
    max_elements: int = 1 << 18,
) -> NDArray[np.float64]:
    """Airtime (s) of each attempt of many coherence-block links at once, each starting at a block
    boundary: link i sends ``bits[i]`` bits ``attempts[i]`` times in a row on its counter stream
    ``keys[i]``. Returns an array (links, max attempts), 0 past a link's last attempt; row i equals what
    :class:`BlockLink` with :func:`counter_source` gives (the same draws and the same arithmetic).

    At most about ``max_elements`` blocks are held at once; the result does not depend on it (block j's
    fading is a function of (key, j), and each link's running sum adds its blocks one by one, in order,
    across chunks). The default, 2^18, makes each of a chunk's few float64 arrays 2 MiB at most: they
    stay in cache, and far below glibc's largest mmap threshold (32 MiB, which the 2^22 arrays reached,
    so they were mapped and page-faulted afresh each chunk). ``fedwave bench clock --ues 10000
    --rounds 5`` took 0.59 to 0.72 s a round with 2^22 (three runs), 0.34 to 0.37 s with 2^18 (four
    runs)."""
    n = keys.size
    cap = int(attempts.max()) if n else 0
    out = np.zeros((n, cap))
    t_prev = np.zeros(n)
    pos = np.zeros(n)
    done_attempts = np.zeros(n, dtype=np.int64)
    next_block = np.zeros(n, dtype=np.int64)
    carry = np.zeros(n)
    active = attempts > done_attempts
    while active.any():
        rows = np.flatnonzero(active)
        need = (attempts[rows] - done_attempts[rows]) * bits[rows] - (carry[rows] - pos[rows])
        guess = chunk_blocks(
            float(np.quantile(need, 0.9)),
            float(np.quantile(snr_mean[rows], 0.1)),
            float(np.median(bandwidth_hz[rows])),
            gap_db,
            block_s,
        )
        m = int(max(16, min(guess, max_elements // max(1, rows.size))))
        j = next_block[rows, None] + np.arange(m, dtype=np.int64)[None, :]
        x = counter_fading_power(keys[rows, None], j, fading, rician_k)
        cap_bits = shannon_rate_bps(bandwidth_hz[rows, None], snr_mean[rows, None] * x, gap_db) * block_s
        cum = np.cumsum(np.concatenate([carry[rows, None], cap_bits], axis=1), axis=1)[:, 1:]
        live = np.ones(rows.size, dtype=bool)
        while True:
            live &= done_attempts[rows] < attempts[rows]
            r = np.flatnonzero(live)
            if not r.size:
                break
            target = pos[rows[r]] + bits[rows[r]]
            count = (cum[r] < target[:, None]).sum(axis=1)
            hit = count < m
            live[r[~hit]] = False  # needs blocks beyond this chunk
            r, target, count = r[hit], target[hit], count[hit]
            g = rows[r]
            before = np.where(count > 0, cum[r, np.maximum(count - 1, 0)], carry[g])
            t_end = end_time_s(next_block[g] + count, target, before, cap_bits[r, count], block_s)
            out[g, done_attempts[g]] = t_end - t_prev[g]
            t_prev[g], pos[g] = t_end, target
            done_attempts[g] += 1
        carry[rows] = cum[:, -1]
        next_block[rows] += m
        active = attempts > done_attempts
    return out


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
