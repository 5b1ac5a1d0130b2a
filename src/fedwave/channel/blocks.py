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

import numpy as np
from numpy.typing import NDArray

from fedwave.channel.fading import sample_fading_power
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
        rngs: one generator per receiver (the fading stream of that receiver's link): i.i.d. draws per
            block; or None with ``source``.
        source: instead of ``rngs``, where the blocks' fading powers come from (e.g. a time-correlated
            process: :class:`~fedwave.channel.gaussmarkov.GaussMarkovFading`).
        offset_s: seconds of the first block already elapsed when the link starts (blocks on an absolute
            time grid), in ``[0, block_s)``.

    Successive :meth:`send` calls continue in the same block sequence (a retransmission starts where the
    previous attempt ended).

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
        self._pos = 0  # current block index
        self._used_s = float(offset_s)  # seconds of the current block already used

    @property
    def blocks_drawn(self) -> int:
        """How many blocks' fading has been drawn so far."""
        return int(self._bits.size)

    def _mean_bits_per_block(self) -> float:
        # E over the fading of the worst receiver's rate is at least the rate at (mean SNR) / 10 for the
        # usual models; only used to size the chunk of blocks drawn next.
        r = shannon_rate_bps(self.bandwidth_hz, float(self.snr_mean.min()) / 10.0, self.gap_db)
        return max(float(r) * self.block_s, 1e-300)

    def _extend(self, need_bits: float) -> None:
        est = need_bits / self._mean_bits_per_block()
        n = int(min(_MAX_CHUNK, max(16.0, 1.25 * est + 4.0)))
        if self._source is not None:
            x = np.asarray(self._source(n), dtype=float).reshape(n, self.snr_mean.size)
        else:
            x = np.stack(
                [sample_fading_power(rng, n, self.fading, self.rician_k) for rng in self._rngs], axis=1
            )
        rates = shannon_rate_bps(self.bandwidth_hz, self.snr_mean[None, :] * x, self.gap_db)
        self._bits = np.concatenate([self._bits, rates.min(axis=1) * self.block_s])

    def send(self, bits: float) -> float:
        """Seconds to send ``bits`` bits from the current position; the position moves to the end."""
        if not bits > 0:
            return 0.0
        remaining = float(bits)
        elapsed = 0.0
        while True:
            if self._pos >= self._bits.size:
                self._extend(remaining)
                continue
            avail = self._bits[self._pos :].copy()
            frac_left = 1.0 - self._used_s / self.block_s
            avail[0] *= frac_left
            cum = np.cumsum(avail)
            j = int(np.searchsorted(cum, remaining, side="left"))
            if j >= cum.size:  # not enough in the drawn blocks: use them all, draw more
                remaining -= float(cum[-1])
                elapsed += self.block_s - self._used_s + (cum.size - 1) * self.block_s
                self._pos = self._bits.size
                self._used_s = 0.0
                continue
            before = float(cum[j - 1]) if j > 0 else 0.0
            rate = self._bits[self._pos + j] / self.block_s
            t_in_block = (remaining - before) / rate
            if j == 0:
                elapsed += t_in_block
                self._used_s += t_in_block
            else:
                elapsed += (self.block_s - self._used_s) + (j - 1) * self.block_s + t_in_block
                self._pos += j
                self._used_s = t_in_block
            if self._used_s >= self.block_s:  # ended exactly on a boundary
                self._pos += 1
                self._used_s = 0.0
            return elapsed


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
        snr = self.snr_mean * x
        if snr < self.outage_snr:
            return float(bits) / self.floor_rate_bps, False, snr
        rate = float(shannon_rate_bps(self.bandwidth_hz, snr, self.gap_db))
        return float(bits) / rate, True, snr
