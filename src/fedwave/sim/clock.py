"""The simulated clock of a run: the cell, the devices and the round policy, driving a :class:`Driver`.

Simulated time is a pure function of the config, the seed and the driver's answers; the host clock is
never read. Random streams: cell ``(seed, "cell", ...)``, devices ``(seed, "devices")``, fading of round r
``(seed, "fading", r)``, packet errors of UE k in round r ``(seed, "errors", r, k)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import simpy
from numpy.typing import NDArray

from fedwave.channel.cell import Cell
from fedwave.channel.link import airtime_s, message_bits, shannon_rate_bps, snr_linear
from fedwave.devices.profiles import DeviceProfile, sample_profiles
from fedwave.errors import ConfigError
from fedwave.rng import Key, numpy_generator
from fedwave.sim.config import WirelessConfig
from fedwave.sim.fifo import FifoChannel
from fedwave.sim.policies import POLICIES, Policy
from fedwave.sim.protocol import Driver
from fedwave.sim.ue import BroadcastDownlink, Downlink, Job, JobContext, QueuedDownlink, Uplink


class Clock:
    """Samples the cell and the device profiles of ``num_ues`` UEs and runs rounds on simulated time.

    Args:
        cfg: the wireless config (copied).
        num_ues: number of UEs in the cell (ids 0 .. num_ues-1).
        flops_per_sample: training FLOPs per sample of the model (see ``training_flops_per_sample``).
        seed: the run seed.

    Attributes:
        cell: the :class:`~fedwave.channel.cell.Cell` (positions, path loss, shadowing, powers).
        profiles: one :class:`~fedwave.devices.profiles.DeviceProfile` per UE.
        policy: the round policy named by ``cfg.policy.name``.
        events_processed: SimPy events processed so far (all runs of this clock).

    Raises:
        ConfigError: a per-UE list in the config does not have ``num_ues`` entries.
    """

    def __init__(self, cfg: WirelessConfig, num_ues: int, flops_per_sample: float, seed: int) -> None:
        if not (math.isfinite(flops_per_sample) and flops_per_sample >= 0):
            raise ValueError(f"flops_per_sample must be finite and >= 0, got {flops_per_sample}")
        self.cfg = cfg.model_copy(deep=True)
        self.num_ues = int(num_ues)
        self.flops_per_sample = float(flops_per_sample)
        self.seed = int(seed)
        self.cell = Cell.sample(self.cfg.cell, self.num_ues, self.seed)
        shares = self.cfg.access.shares
        if shares is not None and len(shares) != self.num_ues:
            raise ConfigError(f"access.shares lists {len(shares)} shares but there are {self.num_ues} UEs")
        self._shares = None if shares is None else np.asarray(shares, dtype=float)
        self.profiles: list[DeviceProfile] = sample_profiles(
            self.cfg.devices, self.num_ues, numpy_generator(self.seed, "devices")
        )
        self.policy: Policy = POLICIES[self.cfg.policy.name](self.cfg.policy)
        self.events_processed = 0
        self._gain = self.cell.large_scale_gain()

    def run(
        self,
        driver: Driver,
        rounds: int,
        clients_per_round: int,
        *,
        start_round: int = 0,
        t_start: float = 0.0,
    ) -> float:
        """Run ``rounds`` rounds numbered from ``start_round``, starting at simulated time ``t_start`` (s).

        A round: select -> broadcast -> UEs (download, compute, upload) -> the policy closes the round ->
        ``driver.aggregate`` -> ``driver.end_round`` (which may stop the run early). With the ``async``
        policy a round is one aggregation and ``clients_per_round`` is the default concurrency.

        Returns:
            The simulated time (s) at the end of the last round run.
        """
        if rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {rounds}")
        if not 1 <= clients_per_round <= self.num_ues:
            raise ConfigError(f"clients_per_round={clients_per_round} must be between 1 and {self.num_ues}")
        self.policy.check(self.num_ues, clients_per_round)
        if rounds == 0:
            return t_start
        return self.policy.run(self, driver, rounds, clients_per_round, start_round, float(t_start))

    # -- helpers for the round runners ------------------------------------------------------------

    def uplink_bandwidth_hz(self, ues: Sequence[int]) -> NDArray[np.float64]:
        """Uplink bandwidth in Hz of each of ``ues`` when they upload in the same round.

        TDMA: the whole band. FDMA: the band split equally among ``ues``, or by ``access.shares``.
        """
        w = self.cfg.access.bandwidth_hz
        n = len(ues)
        if self.cfg.access.scheme == "tdma" or n == 0:
            return np.full(n, w)
        if self._shares is None:
            return np.full(n, w / n)
        s = self._shares[np.asarray(ues, dtype=int)]
        return w * s / s.sum()

    def make_jobs(
        self,
        ues: Sequence[int],
        *,
        round: int,
        version: int,
        fading: NDArray[np.float64],
        bandwidth_hz: NDArray[np.float64],
        error_keys: Callable[[int], tuple[Key, ...]],
    ) -> list[Job]:
        """Jobs for ``ues`` with their uplink SNR and rate on ``bandwidth_hz`` and full-band downlink rate."""
        idx = np.asarray(ues, dtype=int)
        gain = self._gain[idx] * fading
        power = self.cell.ue_power_w[idx]
        snr = snr_linear(power, gain, self.cell.noise_psd_w_hz, bandwidth_hz)
        rate = shannon_rate_bps(bandwidth_hz, snr, self.cfg.access.gap_db)
        rate_dl = self.cell.downlink_rate_bps(gain, self.cfg.access.bandwidth_hz, self.cfg.access.gap_db)
        return [
            Job(
                ue=int(ue),
                round=round,
                version=version,
                profile=self.profiles[int(ue)],
                power_w=float(power[i]),
                snr_up=float(snr[i]),
                rate_up_bps=float(rate[i]),
                rate_down_bps=float(rate_dl[i]),
                error_keys=error_keys(int(ue)),
            )
            for i, ue in enumerate(ues)
        ]

    def job_context(self, driver: Driver, uplink: Uplink, on_arrival: Callable[[Job], Any]) -> JobContext:
        """The shared context of the UE processes of one run or round."""
        access = self.cfg.access
        return JobContext(
            driver=driver,
            flops_per_sample=self.flops_per_sample,
            header_bytes=access.header_bytes,
            skip_message_bytes=self.cfg.event_trigger.skip_message_bytes,
            errors_enabled=access.packet_errors.enabled,
            waterfall_threshold=access.packet_errors.waterfall_threshold,
            max_retransmissions=access.packet_errors.max_retransmissions,
            seed=self.seed,
            uplink=uplink,
            on_arrival=on_arrival,
        )

    def group_downlink(self, env: simpy.Environment, jobs: Sequence[Job], message_bytes: int) -> Downlink:
        """The model's delivery to a group: one broadcast lasting bits / (min downlink rate over the group),
        or (``downlink.mode: unicast``) one full-band unicast per UE, one after another by UE id."""
        header = self.cfg.access.header_bytes
        if self.cfg.downlink.mode == "unicast":
            return QueuedDownlink(FifoChannel(env), message_bytes, header)
        if not jobs:
            return BroadcastDownlink(0.0, message_bytes)
        slowest = min(job.rate_down_bps for job in jobs)
        return BroadcastDownlink(airtime_s(message_bits(message_bytes, header), slowest), message_bytes)
