"""What the BS knows about the radio when it opens a round: the view a channel-aware scheduler reads.

The clock builds a :class:`RadioView` at the start of each synchronous round from
:meth:`~fedwave.sim.clock.Clock.round_channel` (each UE's large-scale mean SNR times a pilot measurement
of its fading) and hands it to the driver before ``Driver.select`` (the optional driver method
``observe_radio(view)``). Predictions use the estimate as if it held for the whole round: the downlink
on the full band at the UE's own estimated downlink SNR (the same gain and fading, the BS's power), the
compute time from the UE's device profile, the upload on a given band at the estimated SNR there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedwave.channel.link import message_bits, shannon_rate_bps
from fedwave.devices.profiles import DeviceProfile


@dataclass(frozen=True)
class RadioView:
    """The channel estimate of round ``round`` and the predictions built on it.

    Attributes:
        round: the round being opened.
        snr: per UE (index = UE id) the estimated uplink SNR on the full band, linear.
        downlink_snr: per UE the estimated downlink SNR on the full band, linear.
        bandwidth_hz: W (Hz).
        gap_db: the SNR gap to capacity (dB).
        header_bytes: header bytes added to every message.
        deadline_s: the round deadline ``wireless.policy.deadline_s`` (s), or None.
        profiles: the UEs' device profiles; ``flops_per_sample`` the model's training FLOPs per sample.
    """

    round: int
    snr: NDArray[np.float64]
    downlink_snr: NDArray[np.float64]
    bandwidth_hz: float
    gap_db: float
    header_bytes: int
    deadline_s: float | None
    profiles: list[DeviceProfile]
    flops_per_sample: float

    def rate_bps(self, ue: int, bandwidth_hz: float) -> float:
        """Estimated uplink rate (bit/s) of UE ``ue`` on ``bandwidth_hz`` Hz (b log2(1 + SNR_W W / (b Gamma)),
        SNR_W the estimate on the full band W)."""
        snr = float(self.snr[ue]) * self.bandwidth_hz / bandwidth_hz
        return float(shannon_rate_bps(bandwidth_hz, snr, self.gap_db))

    def upload_time_s(self, ue: int, nbytes: int, bandwidth_hz: float) -> float:
        """Predicted seconds to upload ``nbytes`` (header added) on ``bandwidth_hz`` Hz (inf at rate 0)."""
        rate = self.rate_bps(ue, bandwidth_hz)
        return message_bits(nbytes, self.header_bytes) / rate if rate > 0 else math.inf

    def downlink_time_s(self, ue: int, nbytes: int) -> float:
        """Predicted seconds for UE ``ue`` to receive ``nbytes`` (header added) on the full band."""
        rate = float(shannon_rate_bps(self.bandwidth_hz, float(self.downlink_snr[ue]), self.gap_db))
        return message_bits(nbytes, self.header_bytes) / rate if rate > 0 else math.inf

    def compute_time_s(self, ue: int, samples: int) -> float:
        """Predicted compute seconds of a local update of ``samples`` samples (the device profile)."""
        return self.profiles[ue].compute_time_s(self.flops_per_sample, samples)
