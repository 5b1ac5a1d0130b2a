"""The simulated clock of a run: the cell, the devices and the round policy, driving a :class:`Driver`.

Simulated time is a pure function of the config, the seed and the driver's answers; the host clock is
never read. Random streams: cell ``(seed, "cell", ...)``, devices ``(seed, "devices")``; for a job with
link keys ``k`` (``(round, ue)`` in synchronous rounds, ``("async", ue, n)`` for a UE's n-th async
dispatch): uplink fading ``(seed, "fading", "up", *k)``, downlink fading ``(seed, "fading", "down", *k)``,
packet errors ``(seed, "errors", *k)``.

Time-varying channels (both opt-in). ``fading.process: gauss_markov``: the fading of UE u evolves over
blocks of absolute simulated time, one process per UE shared by its uplink and downlink, innovations from
``(seed, "fading", "gm", u)`` (:mod:`fedwave.channel.gaussmarkov`); the link keys then serve packet
errors only. This makes the clock stateful across rounds: :meth:`Clock.state_dict` holds the processes'
state and goes into checkpoints. ``cell.mobility: random_waypoint``: positions and shadowing are pure
functions of (seed, UE, t), streams ``(seed, "mobility", "waypoints", u)`` and
``(seed, "mobility", "shadowing", u)`` (:mod:`fedwave.channel.mobility`). A transmission uses the
large-scale gain at its start (:meth:`Clock.large_scale_gain_at`), held for its whole airtime.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import simpy
from numpy.typing import NDArray

from fedwave.channel.blocks import MAX_SNR, BlockLink, counter_source, outage_airtimes
from fedwave.channel.cell import Cell
from fedwave.channel.fading import counter_fading_power
from fedwave.channel.gaussmarkov import GaussMarkovFading, jakes_correlation
from fedwave.channel.link import (
    counter_attempts,
    message_bits,
    packet_error_probability,
    shannon_rate_bps,
    snr_linear,
)
from fedwave.channel.mobility import RandomWaypoint
from fedwave.channel.pathloss import pathloss_db
from fedwave.channel.units import db_to_linear
from fedwave.counter_rng import column_keys, stream_key, stream_keys
from fedwave.devices.profiles import DeviceProfile, sample_profiles
from fedwave.errors import ConfigError
from fedwave.rng import Key, numpy_generator
from fedwave.sim.allocate import UplinkPlan, plan_uplink
from fedwave.sim.config import WirelessConfig
from fedwave.sim.fifo import FifoChannel
from fedwave.sim.policies import Policy, policy_class
from fedwave.sim.protocol import Driver, LocalResult, check_local_result
from fedwave.sim.radio import RadioView
from fedwave.sim.ue import (
    BroadcastDownlink,
    Downlink,
    Job,
    JobContext,
    QueuedDownlink,
    Transmission,
    Uplink,
)
from fedwave.sim.vround import vector_eligible

#: :data:`~fedwave.channel.blocks.MAX_SNR` in dB (330).
_MAX_DB = round(10 * math.log10(MAX_SNR))


def _level(snr: float) -> str:
    """A mean SNR in words: "of X dB" or "that is infinite"."""
    return f"of {10 * math.log10(float(snr)):.4g} dB" if math.isfinite(snr) else "that is infinite"


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
        block_s: the coherence block length (s) of ``fading.block: coherence``.
        fading_rho: the Gauss-Markov correlation J0(2 pi f_D block_s) between consecutive blocks.
        gauss_markov: the UEs' fading processes (``fading.process: gauss_markov``), else None.
        mobility: the UEs' movement (``cell.mobility: random_waypoint``), else None.
        events_processed: SimPy events processed so far (all runs of this clock).
        vectorised: whether synchronous rounds are timed with numpy over the UEs
            (:mod:`fedwave.sim.vround`; ``wireless.clock: auto`` and a round without queueing).
        vector_rounds: rounds timed that way so far.
        outage_snr: the outage threshold of ``fading.block: round`` (linear SNR).
        waterfall_m: the waterfall threshold m of ``access.packet_errors`` (linear).
        flops_devices: with every device on the ``flops`` model, their FLOP/s and J/FLOP as arrays.

    Raises:
        ConfigError: a per-UE list in the config does not have ``num_ues`` entries, or a UE's mean SNR is
            zero (its link could never carry a bit) or so large that a narrow band would take it above
            :data:`~fedwave.channel.blocks.MAX_SNR`.
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
        self.policy: Policy = policy_class(self.cfg.policy.name)(self.cfg.policy)
        if self.cfg.access.scheme == "aircomp" and self.cfg.policy.name not in ("sync", "deadline"):
            raise ConfigError(
                f"access.scheme 'aircomp' needs policy 'sync' or 'deadline', not {self.cfg.policy.name!r}"
            )
        self.events_processed = 0
        with np.errstate(over="ignore"):  # an infinite gain is reported by _check_snrs
            self._gain = self.cell.large_scale_gain()
        self._check_snrs(self.cfg.access.bandwidth_hz)
        fading = self.cfg.cell.fading
        self.block_s = fading.coherence_s(self.cfg.cell.carrier_hz)
        self.fading_rho = jakes_correlation(fading.doppler_hz(self.cfg.cell.carrier_hz), self.block_s)
        self.gauss_markov: GaussMarkovFading | None = None
        if fading.process == "gauss_markov" and fading.model != "none":
            self.gauss_markov = GaussMarkovFading(
                self.num_ues, self.fading_rho, fading.model, fading.rician_k, self.seed
            )
        cell = self.cfg.cell
        self.mobility: RandomWaypoint | None = None
        if cell.mobility.model == "random_waypoint":
            self.mobility = RandomWaypoint(
                self.cell.positions_m,
                cell.radius_m,
                cell.d_min_m,
                fading.ue_speed_kmh / 3.6,
                cell.mobility.pause_s,
                self.cell.shadowing_db,
                cell.shadowing_db,
                cell.mobility.decorrelation_m,
                self.seed,
            )
            far = float(pathloss_db(cell.pathloss.model, [cell.radius_m], cell.pathloss, cell.carrier_hz)[0])
            if not float(db_to_linear(-far)) > 0:
                raise ConfigError(
                    f"a UE walking to the cell edge ({cell.radius_m} m, path loss {far:.4g} dB) would have a "
                    "mean SNR of 0; lower cell.radius_m or change cell.pathloss"
                )
        self.outage_snr = float(db_to_linear(fading.outage_snr_db))
        self.waterfall_m = float(db_to_linear(self.cfg.access.packet_errors.waterfall_threshold_db))
        self.vectorised = vector_eligible(self)
        self.vector_rounds = 0
        flops = all(p.model == "flops" for p in self.profiles)
        # the flops model's per-UE throughput (FLOP/s) and energy (J/FLOP) as arrays, for the vectorised round
        self.flops_devices: tuple[NDArray[np.float64], NDArray[np.float64]] | None = (
            (
                np.array([p.flops_per_s for p in self.profiles]),
                np.array([p.joules_per_flop for p in self.profiles]),
            )
            if flops
            else None
        )

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

        A round: select -> local updates (host) -> broadcast -> UEs (download, compute, upload) -> the
        policy closes the round -> ``driver.aggregate`` -> ``driver.end_round`` (which may stop the run
        early). With the ``async`` policy a round is one aggregation and ``clients_per_round`` is the
        default concurrency.

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

    # -- radio ----------------------------------------------------------------------------------------

    def uplink_bandwidth_hz(self, ues: Sequence[int] | NDArray[np.int64]) -> NDArray[np.float64]:
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

    def round_bands(
        self, ues: Sequence[int], uploads: Sequence[bool] | NDArray[np.bool_]
    ) -> NDArray[np.float64]:
        """Uplink band (Hz) of each of ``ues`` in a synchronous round: the UEs that upload an update
        (``uploads[i]``) share the band as :meth:`uplink_bandwidth_hz` splits it; the others (a "no
        update" message, a silent UE) get a control allocation of W / len(ues)."""
        n = len(ues)
        band = np.full(n, self.cfg.access.bandwidth_hz / max(1, n))
        up = np.flatnonzero(np.asarray(uploads, dtype=bool).reshape(n))
        band[up] = self.uplink_bandwidth_hz(np.asarray(ues, dtype=np.int64).reshape(n)[up])
        return band

    @property
    def time_varying(self) -> bool:
        """Whether the channel depends on simulated time (Gauss-Markov fading or mobility)."""
        return self.gauss_markov is not None or self.mobility is not None

    def _check_time(self, t_s: float | None) -> float:
        if t_s is None:
            if self.time_varying:
                raise ValueError("this cell's channel varies in time: pass the simulated time t_s")
            return 0.0
        return float(t_s)

    def narrowest_share(self) -> NDArray[np.float64]:
        """Per UE, the smallest fraction of the band its uplink messages can get: 1/num_ues (an equal
        FDMA split, a control message, a TDMA round's "no update" messages), its ``access.shares`` entry
        over their sum if smaller, and, with a planned split (``access.allocation`` other than
        ``equal``), 1/num_ues with a 1,000-fold margin."""
        n = max(1, self.num_ues)
        share = np.full(self.num_ues, 1.0 / n)
        if self._shares is not None:
            share = np.minimum(share, self._shares / self._shares.sum())
        if self.cfg.access.allocation != "equal":
            share = np.minimum(share, 1e-3 / n)
        return share

    def _check_snrs(self, full_hz: float) -> None:
        """Raise ConfigError where a UE's mean SNR (uplink, or the BS's downlink to it) on the full band is
        0 (the link could never carry a bit) or so large that the band it is sent on would take it above
        :data:`~fedwave.channel.blocks.MAX_SNR`: the downlink uses the full band, an uplink at least
        :meth:`narrowest_share` of it. With a moving cell, also at ``cell.d_min_m`` with the shadowing 8
        sigma above its mean."""
        share = self.narrowest_share()
        with np.errstate(over="ignore"):  # an infinite gain is reported below
            gain = self.cell.large_scale_gain()
            up = self.cell.mean_snr(full_hz)
            down = snr_linear(self.cell.bs_power_w, gain, self.cell.noise_psd_w_hz, full_hz)
        cell = self.cfg.cell
        pl, moving = 0.0, (0.0, 0.0)  # a moving cell: path loss (dB) and the two SNRs at d_min_m
        if cell.mobility.model != "static":
            with np.errstate(over="ignore", divide="ignore"):
                pl = float(pathloss_db(cell.pathloss.model, cell.d_min_m, cell.pathloss, cell.carrier_hz)[()])
                near = float(
                    snr_linear(
                        1.0, db_to_linear(8.0 * cell.shadowing_db - pl), self.cell.noise_psd_w_hz, full_hz
                    )
                )
                moving = (float(np.max(self.cell.ue_power_w)) * near, float(self.cell.bs_power_w) * near)
        for name, snr, knob, top, at_d_min in (
            ("uplink", up, "cell.ue_power_dbm", MAX_SNR * share, 0),
            ("downlink", down, "cell.bs_power_dbm", np.full(self.num_ues, MAX_SNR), 1),
        ):
            with np.errstate(invalid="ignore"):
                weak = np.flatnonzero(~(snr > 0))
                strong = np.flatnonzero(~(snr <= top))
            if weak.size:
                ue = int(weak[0])
                raise ConfigError(
                    f"UE {ue} at {self.cell.distance_m[ue]:.4g} m has a mean {name} SNR of 0 (path loss "
                    f"{self.cell.pathloss_db[ue]:.4g} dB): its link can never carry a bit; check "
                    f"cell.radius_m, cell.positions_m, cell.pathloss and {knob}"
                )
            if strong.size:
                ue = int(strong[0])
                band = "the full band" if name == "downlink" else f"its {share[ue]:.3g} share of the band"
                raise ConfigError(
                    f"UE {ue} at {self.cell.distance_m[ue]:.4g} m has a mean {name} SNR {_level(snr[ue])} on "
                    f"the full band (path loss {self.cell.pathloss_db[ue]:.4g} dB): above the {_MAX_DB} dB "
                    f"the clock handles on {band}; check cell.d_min_m and cell.positions_m (a UE at the "
                    f"BS?), {knob} and cell.pathloss"
                )
            if cell.mobility.model != "static" and not moving[at_d_min] <= float(top.min()):
                band = (
                    "the full band" if name == "downlink" else f"a {float(share.min()):.3g} share of the band"
                )
                raise ConfigError(
                    f"cell.mobility '{cell.mobility.model}' can take a UE to cell.d_min_m={cell.d_min_m:g} m "
                    f"(path loss {pl:.4g} dB), where its mean {name} SNR on the full band, shadowing 8 sigma "
                    f"up, would be {_level(moving[at_d_min])}: above the {_MAX_DB} dB the clock handles on "
                    f"{band}; raise cell.d_min_m or lower {knob}"
                )

    def large_scale_gain_at(
        self, t_s: float, ues: Sequence[int] | NDArray[np.int_] | None = None
    ) -> NDArray[np.float64]:
        """Linear large-scale gain (path loss and shadowing, no fading) at simulated time ``t_s`` (s) of
        every UE, or of ``ues`` in that order. Static cells: the same at every time."""
        idx = np.arange(self.num_ues) if ues is None else np.asarray(ues, dtype=int).reshape(-1)
        if self.mobility is None:
            return self._gain[idx]
        cell = self.cfg.cell
        pos, shadow = self.mobility.at(idx, float(t_s))
        pl = pathloss_db(cell.pathloss.model, np.hypot(pos[:, 0], pos[:, 1]), cell.pathloss, cell.carrier_hz)
        return db_to_linear(shadow - pl)

    def distance_at(self, t_s: float, ues: Sequence[int] | None = None) -> NDArray[np.float64]:
        """UE-BS distance in m at simulated time ``t_s`` (s) of every UE, or of ``ues``."""
        idx = np.arange(self.num_ues) if ues is None else np.asarray(ues, dtype=int).reshape(-1)
        if self.mobility is None:
            return self.cell.distance_m[idx]
        pos, _ = self.mobility.at(idx, float(t_s))
        return np.hypot(pos[:, 0], pos[:, 1])

    def mean_snr_up(self, ue: int, bandwidth_hz: float, t_s: float | None = None) -> float:
        """Mean uplink SNR (linear, fading averaged out) of UE ``ue`` on ``bandwidth_hz`` Hz at time
        ``t_s`` (s; may be omitted when the channel does not vary in time)."""
        gain = float(self.large_scale_gain_at(self._check_time(t_s), [ue])[0])
        return float(snr_linear(self.cell.ue_power_w[ue], gain, self.cell.noise_psd_w_hz, bandwidth_hz))

    def _gm_source(
        self, ues: Sequence[int], t_s: float
    ) -> tuple[Callable[[int], NDArray[np.float64]], float]:
        """The Gauss-Markov blocks of ``ues`` from the block holding ``t_s`` on, and the offset (s) of
        ``t_s`` into that block."""
        gm = self.gauss_markov
        assert gm is not None
        block = math.floor(t_s / self.block_s)
        offset = t_s - block * self.block_s
        if offset >= self.block_s:
            block, offset = block + 1, 0.0
        offset = max(0.0, offset)
        for ue in ues:
            gm.start(int(ue), block)
        pos = [block]

        def source(n: int) -> NDArray[np.float64]:
            x = np.stack([gm.power(int(ue), pos[0], n) for ue in ues], axis=1)
            pos[0] += n
            return x

        return source, offset

    def _block_link(
        self,
        snr: NDArray[np.float64],
        bandwidth_hz: float,
        ues: Sequence[int] | NDArray[np.int64],
        stream: NDArray[np.uint64],
        t_s: float,
    ) -> BlockLink:
        """A coherence-block link to/from ``ues`` whose i.i.d. fading comes from the counter streams
        ``stream`` (one per receiver), or from the UEs' Gauss-Markov processes."""
        fading = self.cfg.cell.fading
        gap = self.cfg.access.gap_db
        if self.gauss_markov is not None:
            source, offset = self._gm_source([int(u) for u in ues], t_s)
            return BlockLink(
                snr,
                bandwidth_hz,
                gap,
                self.block_s,
                fading.model,
                fading.rician_k,
                None,
                source=source,
                offset_s=offset,
            )
        model, k = fading.model, fading.rician_k
        iid = counter_source(stream, model, k)
        return BlockLink(snr, bandwidth_hz, gap, self.block_s, model, k, None, source=iid)

    def transmit(
        self, ue: int, bandwidth_hz: float, nbytes: int, keys: tuple[Key, ...], t_s: float | None = None
    ) -> Transmission:
        """Send a message of ``nbytes`` payload bytes (header added) from UE ``ue`` on ``bandwidth_hz`` Hz,
        starting at simulated time ``t_s`` (s; may be omitted when the channel does not vary in time).

        Coherence blocks: the airtime of each attempt comes from the block sequence of the stream
        ``(seed, "fading", "up", *keys)`` (or of the UE's Gauss-Markov process from the block holding
        ``t_s``), attempts continuing one after another; with packet errors, each attempt fails
        independently with the waterfall probability on the mean SNR. One draw per attempt
        (``fading.block: round``): the outage rule of :class:`~fedwave.channel.blocks.AttemptLink`. The
        large-scale gain is the one at ``t_s``, for every attempt.
        """
        access = self.cfg.access
        fading = self.cfg.cell.fading
        t = self._check_time(t_s)
        bits = message_bits(nbytes, access.header_bytes)
        snr = self.mean_snr_up(ue, bandwidth_hz, t)
        if fading.block == "round":
            cap = access.max_retransmissions + 1
            x = counter_fading_power(
                stream_key(self.seed, "fading", "up", *keys), np.arange(cap), fading.model, fading.rician_k
            )
            seconds, attempts, delivered = outage_airtimes(
                x.reshape(1, cap),
                np.array([snr]),
                np.array([bandwidth_hz]),
                np.array([float(bits)]),
                gap_db=access.gap_db,
                outage_snr=self.outage_snr,
            )
            return Transmission(tuple(seconds[0, : int(attempts[0])].tolist()), bool(delivered[0]), bits, snr)
        up = np.array([stream_key(self.seed, "fading", "up", *keys)], dtype=np.uint64)
        block = self._block_link(np.array([snr]), bandwidth_hz, [ue], up, t)
        if access.packet_errors.enabled:
            q = self.error_probability(snr)
            n, ok = counter_attempts(
                np.array([stream_key(self.seed, "errors", *keys)], dtype=np.uint64),
                q,
                access.max_retransmissions,
            )
            tries, arrives = int(n[0]), bool(ok[0])
        else:
            tries, arrives = 1, True
        return Transmission(tuple(block.send(bits) for _ in range(tries)), arrives, bits, snr)

    def error_probability(self, snr: float | NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability that one attempt fails (``access.packet_errors``): the waterfall rate on the mean
        SNR ``snr`` (linear) of the band used, which already averages the fading."""
        return packet_error_probability(snr, self.waterfall_m)

    def downlink_time_s(
        self, ues: Sequence[int], nbytes: int, keys: Sequence[tuple[Key, ...]], t_s: float | None = None
    ) -> float:
        """Seconds to deliver ``nbytes`` (header added) on the full band to every UE of ``ues`` at once,
        starting at simulated time ``t_s`` (s; may be omitted when the channel does not vary in time).

        Coherence blocks: each block carries what its worst receiver decodes (each receiver's fading from
        ``(seed, "fading", "down", *keys[i])``, or from its Gauss-Markov process). One draw per round: the
        worst receiver's rate, never below the rate of the outage threshold SNR (the downlink has no
        errors).
        """
        if not ues or nbytes < 0:
            return 0.0
        stream = stream_keys(self.seed, ("fading", "down"), keys)
        return self.broadcast_time_s(ues, nbytes, stream, self._check_time(t_s))

    def broadcast_time_s(
        self, ues: Sequence[int] | NDArray[np.int64], nbytes: int, stream: NDArray[np.uint64], t_s: float
    ) -> float:
        """:meth:`downlink_time_s` with the receivers' downlink fading streams given as counter-stream
        keys (:func:`~fedwave.counter_rng.column_keys` of ``("fading", "down")`` and the link keys)."""
        if not len(ues) or nbytes < 0:
            return 0.0
        access = self.cfg.access
        fading = self.cfg.cell.fading
        w = access.bandwidth_hz
        gain = self.large_scale_gain_at(t_s, ues)
        snr = snr_linear(self.cell.bs_power_w, gain, self.cell.noise_psd_w_hz, w)
        bits = message_bits(nbytes, access.header_bytes)
        if fading.block == "round":
            x = counter_fading_power(stream, 0, fading.model, fading.rician_k)
            rate = shannon_rate_bps(w, np.maximum(snr * x, self.outage_snr), access.gap_db)
            return bits / float(rate.min())
        return self._block_link(snr, w, ues, stream, t_s).send(bits)

    # -- jobs -----------------------------------------------------------------------------------------

    def make_jobs(
        self,
        ues: Sequence[int],
        results: Sequence[LocalResult],
        *,
        round: int,
        version: int,
        keys: Sequence[tuple[Key, ...]],
        bandwidth_hz: Sequence[float] | None = None,
        t_s: float | None = None,
        plan: UplinkPlan | None = None,
    ) -> list[Job]:
        """Jobs for ``ues`` with their local results, link keys and uplink bands, made at simulated time
        ``t_s`` (s; the time of the mean SNR recorded; may be omitted when the channel does not vary).

        Bands (unless given): FDMA splits the band among the UEs that upload an update (not "no update"
        messages, not silent UEs) equally, by ``access.shares``, or as ``plan`` (:meth:`plan_uplink`)
        says, whose CPU frequencies then replace the profiles'; a "no update" message goes on a control
        allocation of W / len(ues). TDMA gives everyone the whole band.
        """
        if len(results) != len(ues) or len(keys) != len(ues):
            raise ValueError(f"need one result and one key per UE: {len(ues)} UEs, {len(results)} results")
        t = self._check_time(t_s)
        if bandwidth_hz is None and plan is None:
            bandwidth_hz = self.round_bands(ues, [not (r.skip or r.silent) for r in results]).tolist()
        elif bandwidth_hz is None:
            assert plan is not None
            control = self.cfg.access.bandwidth_hz / max(1, len(ues))
            bandwidth_hz = [plan.bandwidth_hz.get(u, control) for u in ues]
        cpu_of = plan.cpu_hz if plan is not None else {}
        jobs = []
        for ue, result, key, band in zip(ues, results, keys, bandwidth_hz):
            check_local_result(int(ue), result)
            profile = self.profiles[int(ue)]
            if int(ue) in cpu_of:
                profile = replace(profile, cpu_hz=cpu_of[int(ue)])
            jobs.append(
                Job(
                    ue=int(ue),
                    round=round,
                    version=version,
                    profile=profile,
                    power_w=float(self.cell.ue_power_w[int(ue)]),
                    result=result,
                    bandwidth_hz=float(band),
                    snr_up=self.mean_snr_up(int(ue), float(band), t),
                    keys=tuple(key),
                )
            )
        return jobs

    def plan_uplink(
        self,
        ues: Sequence[int],
        results: Sequence[LocalResult],
        keys: Sequence[tuple[Key, ...]],
        downlink_bytes: int,
        t_s: float | None = None,
    ) -> UplinkPlan | None:
        """The FDMA allocation of a synchronous round starting at ``t_s`` (s) by ``access.allocation``
        (None for ``equal``, whose split :meth:`make_jobs` makes itself); see :mod:`fedwave.sim.allocate`."""
        if self.cfg.access.allocation == "equal":
            return None
        return plan_uplink(self, ues, results, keys, downlink_bytes, self._check_time(t_s))

    def round_channel(self, round: int, t_start: float) -> NDArray[np.float64]:
        """The BS's channel estimate at the start of round ``round`` (at ``t_start`` s): per UE (index =
        UE id) the estimated uplink SNR on the full band W, linear: the large-scale mean SNR at ``t_start``
        (it follows moving UEs) times a pilot
        measurement of the fading power x drawn from ``(seed, "fading", "pilot", round, ue)``
        (x = 1 with ``fading.model: none``)."""
        fading = self.cfg.cell.fading
        w = self.cfg.access.bandwidth_hz
        gain = self.large_scale_gain_at(self._check_time(t_start))
        mean = snr_linear(self.cell.ue_power_w, gain, self.cell.noise_psd_w_hz, w)
        keys = column_keys(self.seed, ("fading", "pilot"), round, np.arange(self.num_ues))
        x = counter_fading_power(keys, 0, fading.model, fading.rician_k)
        return np.asarray(mean * x, dtype=float)

    def radio_view(self, round: int, t_start: float) -> RadioView:
        """What the BS knows of the radio at the start of round ``round`` (:class:`RadioView`), built on
        :meth:`round_channel`; the downlink estimate scales it by the BS/UE power ratio."""
        snr = self.round_channel(round, t_start)
        return RadioView(
            round=round,
            snr=snr,
            downlink_snr=snr * self.cell.bs_power_w / np.asarray(self.cell.ue_power_w, dtype=float),
            bandwidth_hz=self.cfg.access.bandwidth_hz,
            gap_db=self.cfg.access.gap_db,
            header_bytes=self.cfg.access.header_bytes,
            deadline_s=self.cfg.policy.deadline_s,
            profiles=self.profiles,
            flops_per_sample=self.flops_per_sample,
        )

    def group_downlink(
        self,
        env: simpy.Environment,
        jobs: Sequence[Job],
        message_bytes: int,
        *,
        unicast: bool | None = None,
        channel: FifoChannel | None = None,
    ) -> Downlink:
        """The model's delivery to a group: one broadcast lasting until its worst receiver has the whole
        message, or (``downlink.mode: unicast``, or ``unicast=True``) one full-band unicast per UE, one
        after another through ``channel`` (a new one if None), in order of request, ties by UE id."""
        if unicast if unicast is not None else self.cfg.downlink.mode == "unicast":
            return QueuedDownlink(
                channel if channel is not None else FifoChannel(env),
                message_bytes,
                lambda job: self.downlink_time_s([job.ue], message_bytes, [job.keys], env.now),
            )
        duration = self.downlink_time_s([j.ue for j in jobs], message_bytes, [j.keys for j in jobs], env.now)
        return BroadcastDownlink(duration, message_bytes)

    # -- state across rounds ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What the clock carries from one round to the next: the Gauss-Markov fading processes (empty
        when the fading is i.i.d.; mobility is a pure function of time and needs no state)."""
        return {} if self.gauss_markov is None else {"gauss_markov": self.gauss_markov.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict` (a checkpoint of the same run).

        Raises:
            ValueError: the state does not fit this clock (Gauss-Markov state missing or unexpected).
        """
        if self.gauss_markov is None:
            if state:
                raise ValueError("the checkpoint holds fading-process state, but this run's fading is iid")
            return
        if "gauss_markov" not in state:
            raise ValueError(
                "the checkpoint holds no fading-process state, but this run's fading is gauss_markov"
            )
        self.gauss_markov.load_state_dict(state["gauss_markov"])

    def job_context(self, driver: Driver, uplink: Uplink, on_arrival: Callable[[Job], object]) -> JobContext:
        """The shared context of the UE processes of one run or round."""
        return JobContext(
            driver=driver,
            transmit=self.transmit,
            flops_per_sample=self.flops_per_sample,
            skip_message_bytes=self.cfg.event_trigger.skip_message_bytes,
            uplink=uplink,
            on_arrival=on_arrival,
        )
