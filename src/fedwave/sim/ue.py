"""A UE's part in a round, as a SimPy process, and the bookkeeping of its timeline.

The process reads like the round: receive the model -> compute -> (encode) -> wait for the channel ->
upload (airtime times attempts) -> arrive at the BS. Encoding runs on the host and takes no simulated
time. A :class:`Job` records the phase boundaries as they are reached; if the round closes while a UE is
still busy, :meth:`Job.finalize` cuts its timeline (and its energy) at the closing time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from fedwave.channel.link import airtime_s, message_bits, packet_error_probability, sample_attempts
from fedwave.devices.profiles import DeviceProfile, radio_energy_j
from fedwave.records import UEEvent
from fedwave.rng import Key, numpy_generator
from fedwave.sim.fifo import FifoChannel
from fedwave.sim.protocol import Driver, LocalResult

#: Phase boundaries of a job, in the order they are reached (UEEvent attribute names).
BOUNDARIES = ("t_download_start", "t_download_end", "t_compute_end", "t_upload_start", "t_upload_end")
DL_START, DL_END, COMPUTE_END, UP_START, UP_END = range(5)


class Job:
    """One UE's work for one round (or one async dispatch) and its :class:`UEEvent`.

    Radio figures are fixed when the job is created: uplink bandwidth (Hz), SNR (linear), rate (bit/s)
    and downlink rate (bit/s) for the block's fading.
    """

    def __init__(
        self,
        *,
        ue: int,
        round: int,
        version: int,
        profile: DeviceProfile,
        power_w: float,
        snr_up: float,
        rate_up_bps: float,
        rate_down_bps: float,
        error_keys: tuple[Key, ...],
    ) -> None:
        self.ue = ue
        self.version = version
        self.profile = profile
        self.power_w = power_w
        self.snr_up = snr_up
        self.rate_down_bps = rate_down_bps
        self.error_keys = error_keys
        self.event = UEEvent(
            round=round,
            ue=ue,
            status="dropped",
            rate_up_bps=float(rate_up_bps),
            snr_up_db=10.0 * math.log10(snr_up) if snr_up > 0 else -math.inf,
        )
        self.reached = 0
        self.result: LocalResult | None = None
        self.compute_s = 0.0
        self.compute_energy_full_j = 0.0
        self.airtime_s = 0.0
        self.attempts = 0
        self.delivered = False
        self.finished = False
        self.rank = -1  # order among the messages the BS received in the round (0-based)

    def mark(self, boundary: int, t: float) -> None:
        """Record that phase boundary ``boundary`` (index into :data:`BOUNDARIES`) is reached at ``t`` (s)."""
        setattr(self.event, BOUNDARIES[boundary], t)
        if boundary == DL_END:
            self.event.t_compute_start = t
        self.reached = boundary + 1

    def start_compute(self, result: LocalResult, flops_per_sample: float) -> None:
        """Take the driver's local result; fix compute time (s) and energy (J) from the device profile."""
        if result.payload_bytes < 0 or result.samples_processed < 0:
            raise ValueError(
                f"UE {self.ue}: LocalResult needs payload_bytes >= 0 and samples_processed >= 0, got {result}"
            )
        self.result = result
        self.event.samples = int(result.samples_processed)
        self.compute_s = self.profile.compute_time_s(flops_per_sample, result.samples_processed)
        self.compute_energy_full_j = self.profile.compute_energy_j(flops_per_sample, result.samples_processed)

    def finalize(self, t: float) -> None:
        """End the timeline at ``t`` (s): unreached boundaries are set to ``t``; energies (J) cut there."""
        ev = self.event
        for b in range(self.reached, len(BOUNDARIES)):
            setattr(ev, BOUNDARIES[b], t)
            if b == DL_END:
                ev.t_compute_start = t
        if self.result is not None and self.compute_s > 0.0:
            done = min(t, ev.t_compute_end) - ev.t_compute_start
            ev.energy_compute_j = self.compute_energy_full_j * min(1.0, max(0.0, done / self.compute_s))
        elif self.result is not None:
            ev.energy_compute_j = self.compute_energy_full_j
        if self.reached > UP_START:
            if self.finished:
                on_air = self.attempts * self.airtime_s
            else:
                on_air = max(0.0, t - ev.t_upload_start)
                ev.attempts = min(self.attempts, math.ceil(on_air / self.airtime_s)) if on_air > 0 else 0
            ev.energy_radio_j = radio_energy_j(self.power_w, on_air)
        else:
            ev.bytes_up = 0
            ev.attempts = 0
        self.reached = len(BOUNDARIES)


@dataclass
class JobContext:
    """What every UE process of a run needs besides its job."""

    driver: Driver
    flops_per_sample: float
    header_bytes: int
    skip_message_bytes: int
    errors_enabled: bool
    waterfall_threshold: float
    max_retransmissions: int
    seed: int
    uplink: Uplink
    on_arrival: Callable[[Job], Any]


class Downlink:
    """How a job receives the model: an abstract strategy."""

    def receive(self, env: simpy.Environment, job: Job) -> Generator[simpy.Event, Any, None]:
        """Yield until the model is received; mark the download boundaries."""
        raise NotImplementedError


class BroadcastDownlink(Downlink):
    """One broadcast to a group, starting now and lasting ``duration_s`` s for every receiver."""

    def __init__(self, duration_s: float, message_bytes: int) -> None:
        self.duration_s = duration_s
        self.message_bytes = message_bytes

    def receive(self, env: simpy.Environment, job: Job) -> Generator[simpy.Event, Any, None]:
        job.mark(DL_START, env.now)
        job.event.bytes_down = self.message_bytes
        yield env.timeout(self.duration_s)
        job.mark(DL_END, env.now)


class QueuedDownlink(Downlink):
    """Unicast on the full band, one UE at a time through a :class:`FifoChannel`."""

    def __init__(self, channel: FifoChannel, message_bytes: int, header_bytes: int) -> None:
        self.channel = channel
        self.message_bytes = message_bytes
        self.bits = message_bits(message_bytes, header_bytes)

    def receive(self, env: simpy.Environment, job: Job) -> Generator[simpy.Event, Any, None]:
        done = yield self.channel.request(job.ue)
        job.mark(DL_START, env.now)
        job.event.bytes_down = self.message_bytes
        yield env.timeout(airtime_s(self.bits, job.rate_down_bps))
        job.mark(DL_END, env.now)
        done.succeed()


class Uplink:
    """How a job sends its message: FDMA (own sub-band, at once) by default."""

    def send(self, env: simpy.Environment, job: Job, ctx: JobContext) -> Generator[simpy.Event, Any, None]:
        """Yield until the message's last attempt ends."""
        yield from _transmit(env, job, ctx)


class TdmaUplink(Uplink):
    """The whole band, one UE at a time, in order of arrival at the channel (ties: UE id)."""

    def __init__(self, channel: FifoChannel) -> None:
        self.channel = channel

    def send(self, env: simpy.Environment, job: Job, ctx: JobContext) -> Generator[simpy.Event, Any, None]:
        done = yield self.channel.request(job.ue)
        yield from _transmit(env, job, ctx)
        done.succeed()


def _transmit(env: simpy.Environment, job: Job, ctx: JobContext) -> Generator[simpy.Event, Any, None]:
    assert job.result is not None
    nbytes = ctx.skip_message_bytes if job.result.skip else int(job.result.payload_bytes)
    job.airtime_s = airtime_s(message_bits(nbytes, ctx.header_bytes), job.event.rate_up_bps)
    if ctx.errors_enabled:
        q = float(packet_error_probability(job.snr_up, ctx.waterfall_threshold))
        rng = numpy_generator(ctx.seed, "errors", *job.error_keys)
        job.attempts, job.delivered = sample_attempts(rng, q, ctx.max_retransmissions)
    else:
        job.attempts, job.delivered = 1, True
    job.mark(UP_START, env.now)
    job.event.bytes_up = nbytes
    job.event.attempts = job.attempts
    yield env.timeout(job.attempts * job.airtime_s)
    job.mark(UP_END, env.now)


def ue_process(
    env: simpy.Environment, job: Job, downlink: Downlink, ctx: JobContext
) -> Generator[simpy.Event, Any, None]:
    """A UE's round: receive the model -> compute -> (encode) -> wait for the channel -> upload -> arrive."""
    yield from downlink.receive(env, job)
    job.start_compute(ctx.driver.local_update(job.event.round, job.ue, job.version), ctx.flops_per_sample)
    yield env.timeout(job.compute_s)
    job.mark(COMPUTE_END, env.now)
    yield from ctx.uplink.send(env, job, ctx)
    job.finished = True
    ctx.on_arrival(job)


def run_until(env: simpy.Environment, until: simpy.Event) -> int:
    """Step ``env`` until ``until`` has been processed; return the number of events processed."""
    n = 0
    while not until.processed:
        try:
            env.step()
        except simpy.core.EmptySchedule:
            raise RuntimeError(
                "the simulation ran out of events before the round could close "
                "(did Driver.select return no UE for every free slot?)"
            ) from None
        n += 1
    return n
