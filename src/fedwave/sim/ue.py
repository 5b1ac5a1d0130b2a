"""A UE's part in a round, as a SimPy process, and the bookkeeping of its timeline.

The process reads like the round: receive the model -> compute -> wait for the channel -> upload (the
airtime of every attempt) -> arrive at the BS. Training and encoding run on the host when the BS sends
the model (``Driver.local_updates``) and take no simulated time; the device's compute time does. A
:class:`Job` records the phase boundaries as they are reached; if the round closes while a UE is still
busy, :meth:`Job.finalize` cuts its timeline (and its energy) at the closing time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Protocol

import simpy

from fedwave.devices.profiles import DeviceProfile, radio_energy_j
from fedwave.records import UEEvent
from fedwave.rng import Key
from fedwave.sim.fifo import FifoChannel
from fedwave.sim.protocol import Driver, LocalResult

#: Phase boundaries of a job, in the order they are reached (UEEvent attribute names).
BOUNDARIES = ("t_download_start", "t_download_end", "t_compute_end", "t_upload_start", "t_upload_end")
DL_START, DL_END, COMPUTE_END, UP_START, UP_END = range(5)


class Job:
    """One UE's work for one round (or one async dispatch) and its :class:`UEEvent`.

    The local result (what the UE will send) is known when the job is made; the clock plays out its
    timing: download, compute (device time), channel wait, upload (airtime of every attempt).

    Attributes:
        bandwidth_hz: the UE's uplink band (Hz); ``snr_up`` its mean SNR there (linear).
        keys: the link keys of the job's random streams (fading, errors).
    """

    def __init__(
        self,
        *,
        ue: int,
        round: int,
        version: int,
        profile: DeviceProfile,
        power_w: float,
        result: LocalResult,
        bandwidth_hz: float,
        snr_up: float,
        keys: tuple[Key, ...],
    ) -> None:
        self.ue = ue
        self.version = version
        self.profile = profile
        self.power_w = power_w
        self.result = result
        self.bandwidth_hz = bandwidth_hz
        self.snr_up = snr_up
        self.keys = keys
        self.event = UEEvent(
            round=round,
            ue=ue,
            status="dropped",
            snr_up_db=10.0 * math.log10(snr_up) if snr_up > 0 else -math.inf,
            behaviour=result.behaviour,
            bandwidth_hz=bandwidth_hz,
            cpu_hz=profile.cpu_hz if profile.model == "cycles" else 0.0,
        )
        self.reached = 0
        self.compute_s = 0.0
        self.compute_energy_full_j = 0.0
        self.attempt_s: tuple[float, ...] = ()
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

    def start_compute(self, flops_per_sample: float) -> None:
        """Fix compute time (s) and energy (J) of the local result from the device profile."""
        samples = self.result.samples_processed
        self.event.samples = int(samples)
        self.compute_s = self.profile.compute_time_s(flops_per_sample, samples)
        self.compute_energy_full_j = self.profile.compute_energy_j(flops_per_sample, samples)

    def finalize(self, t: float) -> None:
        """End the timeline at ``t`` (s): unreached boundaries are set to ``t``; energies (J) cut there."""
        ev = self.event
        for b in range(self.reached, len(BOUNDARIES)):
            setattr(ev, BOUNDARIES[b], t)
            if b == DL_END:
                ev.t_compute_start = t
        if self.compute_s > 0.0 and ev.samples:
            done = min(t, ev.t_compute_end) - ev.t_compute_start
            ev.energy_compute_j = self.compute_energy_full_j * min(1.0, max(0.0, done / self.compute_s))
        elif ev.samples:
            ev.energy_compute_j = self.compute_energy_full_j
        if self.reached > UP_START:
            starts = attempt_starts(self.attempt_s)
            if self.finished:
                on_air = starts[-1]
            else:
                on_air = max(0.0, t - ev.t_upload_start)
                ev.attempts = sum(1 for s in starts[:-1] if s < on_air) if on_air > 0 else 0
            ev.energy_radio_j = radio_energy_j(self.power_w, on_air)
        else:
            ev.bytes_up = 0
            ev.attempts = 0
        self.reached = len(BOUNDARIES)


def attempt_starts(attempt_s: Sequence[float]) -> list[float]:
    """Offsets (s) at which each attempt starts from the first one's start, then the total airtime: sums
    taken in order, left to right (as the vectorised clock takes them)."""
    return [0.0, *accumulate(float(a) for a in attempt_s)]


class Transmit(Protocol):
    """``transmit(ue, bandwidth_hz, nbytes, keys, t_s)``: the attempts, delivery and airtime of one message
    starting at simulated time ``t_s`` (s)."""

    def __call__(
        self, ue: int, bandwidth_hz: float, nbytes: int, keys: tuple[Key, ...], t_s: float | None = None
    ) -> Transmission: ...


@dataclass(frozen=True)
class Transmission:
    """The outcome of sending one message of ``bits`` bits on the air (header included): the duration of
    each attempt (s), whether the last attempt arrived, and the mean SNR (linear, large-scale gain at the
    transmission's start) it was sent with, if known."""

    attempt_s: tuple[float, ...]
    delivered: bool
    bits: int
    snr_mean: float | None = None

    @property
    def attempts(self) -> int:
        """Attempts made (each cost its airtime)."""
        return len(self.attempt_s)

    @property
    def airtime_s(self) -> float:
        """Total airtime of all attempts (s), summed in order."""
        return attempt_starts(self.attempt_s)[-1]


@dataclass
class JobContext:
    """What every UE process of a run needs besides its job."""

    driver: Driver
    transmit: Transmit
    flops_per_sample: float
    skip_message_bytes: int
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
    """Unicast on the full band, one UE at a time through a :class:`FifoChannel`.

    ``duration_s(job)`` gives the seconds of the job's unicast (a pure function of the job's link).
    """

    def __init__(self, channel: FifoChannel, message_bytes: int, duration_s: Callable[[Job], float]) -> None:
        self.channel = channel
        self.message_bytes = message_bytes
        self.duration_s = duration_s

    def receive(self, env: simpy.Environment, job: Job) -> Generator[simpy.Event, Any, None]:
        done = yield self.channel.request(job.ue)
        job.mark(DL_START, env.now)
        job.event.bytes_down = self.message_bytes
        yield env.timeout(self.duration_s(job))
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
    nbytes = ctx.skip_message_bytes if job.result.skip else int(job.result.payload_bytes)
    sent = ctx.transmit(job.ue, job.bandwidth_hz, nbytes, job.keys, env.now)
    job.attempt_s, job.attempts, job.delivered = sent.attempt_s, sent.attempts, sent.delivered
    job.mark(UP_START, env.now)
    ev = job.event
    ev.bytes_up = nbytes
    ev.attempts = sent.attempts
    if sent.snr_mean is not None and sent.snr_mean > 0:  # moving UEs: the SNR at the upload's start
        ev.snr_up_db = 10.0 * math.log10(sent.snr_mean)
    airtime = sent.airtime_s
    ev.rate_up_bps = sent.bits * sent.attempts / airtime if airtime > 0 else 0.0
    yield env.timeout(airtime)
    job.mark(UP_END, env.now)


def ue_process(
    env: simpy.Environment, job: Job, downlink: Downlink, ctx: JobContext
) -> Generator[simpy.Event, Any, None]:
    """A UE's round: receive the model -> compute -> wait for the channel -> upload -> arrive at the BS.

    A silent UE (a fault) computes and then never answers: it does not call ``on_arrival``.
    """
    yield from downlink.receive(env, job)
    job.start_compute(ctx.flops_per_sample)
    yield env.timeout(job.compute_s)
    job.mark(COMPUTE_END, env.now)
    if job.result.silent:
        return
    yield from ctx.uplink.send(env, job, ctx)
    job.finished = True
    ctx.on_arrival(job)


class RoundCannotClose(RuntimeError):
    """The simulation ran out of events before the BS could close the round."""


def run_until(env: simpy.Environment, until: simpy.Event) -> int:
    """Step ``env`` until ``until`` has been processed; return the number of events processed.

    Raises:
        RoundCannotClose: no event is left but ``until`` has not happened (every UE the BS waits for
            went silent, or the driver selected no UE for any free slot).
    """
    n = 0
    while not until.processed:
        try:
            env.step()
        except simpy.core.EmptySchedule:
            raise RoundCannotClose(
                "the simulation ran out of events before the round could close "
                "(UEs went silent, or Driver.select returned no UE for every free slot)"
            ) from None
        n += 1
    return n
