"""One round of over-the-air computation (``access.scheme: aircomp``) on the simulated clock.

select -> local updates (host) -> model downlink -> compute -> [deadline: who is done computing] ->
fading draw and truncation -> digital control scalars (FDMA-split) -> feedback of the common statistics
(analog mode) -> one analog transmission of every active UE at once -> aggregate over the air -> record.

Everyone who takes part transmits together, so the round's timeline has a closed form and needs no event
queue. Times (s): ``D_k`` the end of UE k's model download, ``c_k = D_k + compute_k``. ``sync``: every
selected UE takes part; ``deadline``: only UEs with ``c_k <= t0 + deadline_s`` (the others are
``dropped``, their work cut at the round's end). Each participant draws its fading power once for the
round from ``(seed, "fading", "up", round, ue)``; one below ``access.aircomp.truncation_fading_power`` is
``truncated`` (silent: no control message, no analog symbols). The others send a control message of
``control_bytes`` on ``W / (number of them)`` Hz right after computing (stream ``(seed, "fading", "up",
round, ue, "aircomp-control")``; a failed one under ``fading.block: round`` makes the UE ``lost``). When the
last control message is in (and, with UEs missing, not before the deadline) the BS broadcasts the mean and
std (analog mode, ``control_bytes``), then the analog phase lasts ``ceil(d/2) / W`` s (d model entries).

The analog phase uses one fading draw per UE: with ``fading.block: coherence`` it must fit in one
coherence block (a longer one is refused with the fix to apply); ``fading.block: round`` holds one draw
per attempt by definition. UE timelines: the upload phase of an active UE runs from its compute end to
the end of the analog phase (control message, waiting for the others, feedback, analog symbols); its
radio energy is ``P_k x control airtime + p_k x analog airtime``. ``bytes_up`` counts the control
messages only (analog symbols carry no bytes; ``extra["aircomp_symbols"]`` counts them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from fedwave.channel.aircomp import analog_airtime_s, analog_symbols, truncated_inversion
from fedwave.channel.fading import sample_fading_power
from fedwave.errors import FedwaveError
from fedwave.rng import numpy_generator
from fedwave.sim.protocol import Arrival, Driver
from fedwave.sim.timeline import build_record
from fedwave.sim.ue import COMPUTE_END, DL_END, DL_START, UP_END, UP_START, Job

if TYPE_CHECKING:
    from fedwave.sim.clock import Clock

#: Stream tag of the control messages' fading (kept apart from the analog phase's draw).
CONTROL_TAG = "aircomp-control"


@dataclass(frozen=True)
class AirChannel:
    """What the BS's over-the-air aggregation of one round needs from the radio.

    Attributes:
        mode: ``analog`` or ``one_bit``.
        ues: the active UEs (ascending ids), those whose symbols add up at the BS.
        rho0_w: aligned received power per UE symbol (W).
        noise_power_w: receiver noise power ``N0 W`` on the whole band (W).
    """

    mode: str
    ues: tuple[int, ...]
    rho0_w: float
    noise_power_w: float


@runtime_checkable
class OverTheAirDriver(Protocol):
    """A driver that can aggregate over the air (the FL driver); a timeline-only driver need not."""

    def update_entries(self) -> int:
        """Real entries d of one update (the analog symbols are ``ceil(d/2)``)."""
        ...

    def aggregate_over_air(self, round: int, arrivals: list[Arrival], air: AirChannel) -> None:
        """BS step with the over-the-air estimate of the active UEs' mean update (version + 1)."""
        ...


def _entries(driver: Driver, results_bytes: list[int]) -> int:
    if isinstance(driver, OverTheAirDriver):
        return int(driver.update_entries())
    # A timeline-only driver: its payload read as float32 entries.
    return max(results_bytes, default=0) // 4


def _fading_draw(clock: Clock, job: Job) -> float:
    """UE ``job.ue``'s fading power |h|^2 for the round's analog phase (first draw of its uplink stream)."""
    fading = clock.cfg.cell.fading
    rng = numpy_generator(clock.seed, "fading", "up", *job.keys)
    return float(sample_fading_power(rng, 1, fading.model, fading.rician_k)[0])


def _critical(candidates: list[Job], ends: dict[int, float]) -> Job | None:
    """The UE that closes the round: the last one to end its own transmission (ties: lowest id)."""
    if not candidates:
        return None
    return max(candidates, key=lambda j: (ends.get(j.ue, j.event.t_compute_end), -j.ue))


def _download_and_compute(clock: Clock, jobs: list[Job], dl_bytes: int, t0: float, unicast: bool) -> None:
    """Mark each job's model download (one broadcast from ``t0``, or full-band unicasts one after another
    by UE id) and fix its compute time."""
    t = t0
    broadcast_s = 0.0
    if jobs and not unicast:
        broadcast_s = clock.downlink_time_s([j.ue for j in jobs], dl_bytes, [j.keys for j in jobs])
    for job in jobs:
        start = t if unicast else t0
        end = start + (clock.downlink_time_s([job.ue], dl_bytes, [job.keys]) if unicast else broadcast_s)
        t = end if unicast else t
        job.mark(DL_START, start)
        job.event.bytes_down = dl_bytes
        job.mark(DL_END, end)
        job.start_compute(clock.flops_per_sample)


def run_aircomp_round(
    clock: Clock, driver: Driver, rnd: int, clients_per_round: int, t0: float
) -> tuple[float, bool]:
    """Simulate AirComp round ``rnd`` from ``t0`` (s); return (end time in s, whether to continue)."""
    from fedwave.sim.rounds import select_and_train

    cfg = clock.cfg
    air = cfg.access.aircomp
    w = cfg.access.bandwidth_hz
    fading = cfg.cell.fading
    selected, results = select_and_train(clock, driver, rnd, clients_per_round)
    keys = [(rnd, ue) for ue in selected]
    jobs = clock.make_jobs(
        selected, results, round=rnd, version=rnd, keys=keys, bandwidth_hz=[w] * len(selected)
    )
    dl_bytes = driver.broadcast_bytes() if jobs else 0
    unicast = cfg.downlink.mode == "unicast"
    _download_and_compute(clock, jobs, dl_bytes, t0, unicast)
    deadline = (
        t0 + cfg.policy.deadline_s if cfg.policy.name == "deadline" and cfg.policy.deadline_s else math.inf
    )
    compute_end = {j.ue: j.event.t_compute_start + j.compute_s for j in jobs}
    done = [j for j in jobs if not j.result.silent and compute_end[j.ue] <= deadline]
    missing = len(done) < len(jobs)
    for job in done:
        job.mark(COMPUTE_END, compute_end[job.ue])
    # -- truncation (one draw per UE and round)
    x = np.array([_fading_draw(clock, j) for j in done])
    idx = np.asarray([j.ue for j in done], dtype=int)
    power, gain = clock.cell.ue_power_w[idx], clock.large_scale_gain_at(0.0, idx)
    first = truncated_inversion(power, gain, x, air.truncation_fading_power)
    ends = {j.ue: compute_end[j.ue] for j in done}  # end of each participant's own transmission
    control_s: dict[int, float] = {}
    band = w / max(1, int(first.active.sum()))
    delivered = np.zeros(len(done), dtype=bool)
    for i, job in enumerate(done):
        c = compute_end[job.ue]
        job.mark(UP_START, c)
        job.finished = True
        if not first.active[i]:
            job.event.status = "truncated"
            job.mark(UP_END, c)
            continue
        sent = clock.transmit(job.ue, band, air.control_bytes, (*job.keys, CONTROL_TAG))
        job.attempt_s, job.attempts, job.delivered = sent.attempt_s, sent.attempts, sent.delivered
        job.event.bytes_up = air.control_bytes
        job.event.attempts = sent.attempts
        job.event.rate_up_bps = sent.bits * sent.attempts / sent.airtime_s if sent.airtime_s > 0 else 0.0
        control_s[job.ue] = sent.airtime_s
        ends[job.ue] = c + sent.airtime_s
        delivered[i] = sent.delivered
        if not sent.delivered:
            job.event.status = "lost"
            job.mark(UP_END, ends[job.ue])
    # -- the analog phase, with the UEs whose control message arrived
    inv = truncated_inversion(power, gain, np.where(delivered, x, 0.0), 0.0)
    active = [j for j, a in zip(done, inv.active) if a]
    t_ready = max([ends[j.ue] for j in active] or list(ends.values()) or [t0])
    if missing and math.isfinite(deadline):
        t_ready = max(t_ready, deadline)  # the BS learns who is late only at the deadline
    entries = _entries(driver, [r.payload_bytes for r in results])
    feedback_bytes = air.control_bytes if active and air.mode == "analog" else 0
    feedback_s = (
        clock.downlink_time_s(
            [j.ue for j in active], feedback_bytes, [(*j.keys, "aircomp-feedback") for j in active]
        )
        if feedback_bytes
        else 0.0
    )
    analog_s = analog_airtime_s(entries, w) if active else 0.0
    if active and fading.block == "coherence" and analog_s > clock.block_s:
        raise FedwaveError(
            f"the AirComp analog phase lasts {analog_s:.4g} s ({analog_symbols(entries)} symbols on "
            f"{w:.4g} Hz), longer than the coherence block ({clock.block_s:.4g} s): one channel inversion "
            "cannot hold. Raise wireless.access.bandwidth_hz or wireless.cell.fading.coherence_time_s, lower "
            "ue_speed_kmh, use a smaller model, or set wireless.cell.fading.block=round (one draw per "
            "transmission)"
        )
    t_end = t_ready + feedback_s + analog_s if active else t_ready
    arrivals: list[Arrival] = []
    analog_energy: dict[int, float] = {}
    for job, p, a in zip(done, inv.tx_power_w, inv.active):
        if a:
            job.event.status = "arrived"
            job.mark(UP_END, t_end)
            analog_energy[job.ue] = float(p) * analog_s
            arrivals.append(Arrival(job.ue, job.result.handle, 0, 1.0, False))
    discarded: dict[str, list[object]] = {}
    for job in jobs:
        if job.result.silent:
            job.event.status = "silent"
        job.finalize(t_end)
        job.event.energy_radio_j += analog_energy.get(job.ue, 0.0)
        if job.event.status != "arrived":
            discarded.setdefault(job.event.status, []).append(job.result.handle)
    critical = _critical(active or done or jobs[:1], ends)
    events = [j.event for j in jobs]
    bytes_down = (sum(e.bytes_down for e in events) if unicast else dl_bytes) + feedback_bytes
    for reason, handles in discarded.items():
        driver.discard(handles, reason)
    channel = AirChannel(air.mode, tuple(j.ue for j in active), inv.rho0_w, clock.cell.noise_psd_w_hz * w)
    if isinstance(driver, OverTheAirDriver):
        driver.aggregate_over_air(rnd, arrivals, channel)
    else:
        driver.aggregate(rnd, arrivals)
    record = build_record(
        rnd, t0, t_end, events, critical.event if critical is not None else None, bytes_down
    )
    snr = inv.rho0_w / channel.noise_power_w if active else 0.0
    record.extra.update(
        {
            "aircomp_active": float(len(active)),
            "aircomp_truncated": float(sum(1 for e in events if e.status == "truncated")),
            "aircomp_symbols": float(analog_symbols(entries) if active else 0),
            "aircomp_analog_s": float(analog_s),
            "aircomp_control_s": float(max(control_s.values(), default=0.0)),
            "aircomp_feedback_s": float(feedback_s),
            "aircomp_rx_snr_db": 10.0 * math.log10(snr) if snr > 0 else -math.inf,
        }
    )
    return t_end, bool(driver.end_round(record, events))
