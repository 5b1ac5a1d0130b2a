"""A synchronous round timed with numpy over the UEs: the same timelines as the SimPy round, much faster.

When nothing queues (FDMA uplink, broadcast downlink, a static cell with i.i.d. fading, the band split
equally or by ``access.shares``) every UE's timeline is a sum of its own durations: the broadcast, its
compute time, the airtime of its attempts. :func:`run_vector_round` computes them for all UEs at once
with the very draws and arithmetic of the SimPy path (:meth:`Clock.transmit`), orders the completions as
SimPy's event queue would (time, then the order in which the uploads started, then the UE's place in
the round) and closes the round by the policy's rule: ``sync`` (every UE done), ``deadline`` (the
deadline, or every UE done before it) or ``first_k`` (the k-th delivered message). A close that falls
exactly on a phase boundary of some UE is left to SimPy, whose order of same-instant events decides it.
``wireless.clock: simpy`` turns the path off; ``tests/wireless/test_wireless_vround.py`` checks that both
give the same records and events on randomized scenarios.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fedwave.channel.blocks import outage_airtimes, uplink_block_airtimes
from fedwave.channel.fading import counter_fading_power
from fedwave.channel.link import counter_attempts, message_bits, snr_linear
from fedwave.counter_rng import column_keys
from fedwave.errors import FedwaveError
from fedwave.sim.eventtable import EventTable
from fedwave.sim.protocol import Arrival, Driver, LocalResult
from fedwave.sim.timeline import build_record

if TYPE_CHECKING:
    from fedwave.sim.clock import Clock


def vector_eligible(clock: Clock) -> bool:
    """Whether this clock's rounds can be timed by :func:`run_vector_round` (config only)."""
    cfg = clock.cfg
    return (
        cfg.clock == "auto"
        and cfg.access.scheme == "fdma"
        and cfg.downlink.mode == "broadcast"
        and cfg.access.allocation == "equal"
        and not clock.time_varying
        and type(clock.policy) in vector_policies()
    )


def vector_policies() -> tuple[type, ...]:
    """The round policies with a vectorised close (exactly these classes, not subclasses that may
    close otherwise)."""
    from fedwave.sim.policies import DeadlinePolicy, FirstKPolicy, SyncPolicy  # policies import rounds

    return (SyncPolicy, DeadlinePolicy, FirstKPolicy)


_COLUMNS = attrgetter("payload_bytes", "samples_processed", "skip", "silent")


def _result_columns(
    results: Sequence[LocalResult],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_], NDArray[np.bool_]]:
    """Payload bytes, samples, skip and silent flags of the (checked) results."""
    fields = chain.from_iterable(map(_COLUMNS, results))
    table = np.fromiter(fields, dtype=np.int64, count=4 * len(results)).reshape(len(results), 4)
    return table[:, 0].copy(), table[:, 1].copy(), table[:, 2] != 0, table[:, 3] != 0


def _compute(clock: Clock, ues: NDArray[np.int64], samples: NDArray[np.int64]) -> tuple[Any, Any, Any]:
    """Compute time (s), full compute energy (J) and recorded CPU frequency (Hz) per UE, as
    :class:`~fedwave.devices.profiles.DeviceProfile` gives them."""
    f = clock.flops_per_sample
    if clock.flops_devices is not None:
        fps, jpf = clock.flops_devices
        s = samples.astype(float)
        return f * s / fps[ues], jpf[ues] * f * s, np.zeros(ues.size)
    profiles = [clock.profiles[int(u)] for u in ues]
    secs = np.array([p.compute_time_s(f, int(n)) for p, n in zip(profiles, samples)])
    joules = np.array([p.compute_energy_j(f, int(n)) for p, n in zip(profiles, samples)])
    cpu = np.array([p.cpu_hz if p.model == "cycles" else 0.0 for p in profiles])
    return secs, joules, cpu


def _airtimes(
    clock: Clock, rnd: int, ues: NDArray[np.int64], snr: Any, band: Any, bits: Any
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    """Seconds of each attempt (UEs, attempts), attempts and delivery of each UE's upload."""
    access, fading = clock.cfg.access, clock.cfg.cell.fading
    keys = column_keys(clock.seed, ("fading", "up"), rnd, ues)
    if fading.block == "round":
        cap = access.max_retransmissions + 1
        x = counter_fading_power(keys[:, None], np.arange(cap)[None, :], fading.model, fading.rician_k)
        return outage_airtimes(x, snr, band, bits, gap_db=access.gap_db, outage_snr=clock.outage_snr)
    if access.packet_errors.enabled:
        q = clock.error_probability(snr)
        attempts, delivered = counter_attempts(
            column_keys(clock.seed, ("errors",), rnd, ues), q, access.max_retransmissions
        )
    else:
        attempts, delivered = np.ones(ues.size, dtype=np.int64), np.ones(ues.size, dtype=bool)
    seconds = uplink_block_airtimes(
        keys,
        snr,
        band,
        bits,
        attempts,
        gap_db=access.gap_db,
        block_s=clock.block_s,
        fading=fading.model,
        rician_k=fading.rician_k,
    )
    return seconds, attempts, delivered


def run_vector_round(
    clock: Clock,
    driver: Driver,
    rnd: int,
    selected: list[int],
    results: list[LocalResult],
    dl_bytes: int,
    t0: float,
) -> tuple[float, bool] | None:
    """Time round ``rnd`` (from ``t0`` s) of ``selected`` with their ``results`` and finish it like
    :func:`~fedwave.sim.rounds.run_round`; None (before any driver call) when the close falls on a phase
    boundary and SimPy must order the same-instant events."""
    cfg = clock.cfg
    n = len(selected)
    ues = np.asarray(selected, dtype=np.int64)
    payload, samples, skip, silent = _result_columns(results)
    # bands as Clock.make_jobs: FDMA among the UEs that upload an update, a control share for the rest
    band = clock.round_bands(selected, ~(skip | silent))
    power = np.asarray(clock.cell.ue_power_w, dtype=float)[ues]
    snr = snr_linear(power, clock.large_scale_gain_at(t0, ues), clock.cell.noise_psd_w_hz, band)
    down_keys = column_keys(clock.seed, ("fading", "down"), rnd, ues)
    down_s = clock.broadcast_time_s(ues, dl_bytes, down_keys, t0) if n else 0.0
    compute_s, compute_j, cpu_hz = _compute(clock, ues, samples)
    t_dl = t0 + np.full(n, down_s)
    t_ce = t_dl + compute_s
    nbytes = np.where(skip, cfg.event_trigger.skip_message_bytes, payload)
    bits = message_bits(nbytes, cfg.access.header_bytes)
    seconds, attempts, delivered = _airtimes(clock, rnd, ues, snr, band, bits.astype(float))
    starts = np.cumsum(seconds, axis=1)
    airtime = starts[:, -1] if seconds.shape[1] else np.zeros(n)
    t_ue = t_ce + airtime
    talks = ~silent
    order = np.lexsort((np.arange(n), t_ce, t_ue))
    order = order[talks[order]]
    t_end, n_done = _close(clock, rnd, selected, t0, order, t_ue, delivered, silent)
    done_rows = order[:n_done]
    if n_done < n and np.any(t_dl == t_end):
        return None  # the model arrives at the very instant of the close: SimPy orders that
    finished = np.zeros(n, dtype=bool)
    finished[done_rows] = True
    # which completions count, in completion order (SimPy's state.completed)
    rank = np.cumsum(delivered[done_rows]) - 1
    counted = np.ones(done_rows.size, dtype=bool)
    if cfg.policy.name == "first_k":
        assert cfg.policy.k is not None
        counted = ~delivered[done_rows] | (rank < cfg.policy.k)
    elif cfg.policy.name == "deadline":
        assert cfg.policy.deadline_s is not None
        counted = t_ue[done_rows] <= t0 + cfg.policy.deadline_s
    status = ["silent" if s else "dropped" for s in silent.tolist()]
    rows = done_rows[counted].tolist()
    skips, gets = skip.tolist(), delivered.tolist()
    for i in rows:
        status[i] = ("skipped" if skips[i] else "arrived") if gets[i] else "lost"
    # cut every timeline at the close (Job.finalize)
    reached_dl = t_dl <= t_end
    reached_ce = t_ce <= t_end
    sending = reached_ce & talks
    t_ce_col = np.where(reached_ce, t_ce, t_end)
    t_cs = np.where(reached_dl, t_dl, t_end)
    got = np.where(reached_dl, samples, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.minimum(1.0, np.maximum(0.0, (np.minimum(t_end, t_ce_col) - t_cs) / compute_s))
    energy_cp = np.where(got > 0, np.where(compute_s > 0.0, compute_j * frac, compute_j), 0.0)
    on_air = np.where(finished, airtime, np.maximum(0.0, t_end - np.where(sending, t_ce, t_end)))
    excl = np.concatenate([np.zeros((n, 1)), starts[:, :-1]], axis=1)
    cut_attempts = np.where(
        on_air > 0, ((excl < on_air[:, None]) & (np.arange(seconds.shape[1]) < attempts[:, None])).sum(1), 0
    )
    ev_attempts = np.where(sending, np.where(finished, attempts, cut_attempts), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(airtime > 0, bits * attempts / airtime, 0.0)
    columns = {
        "ue": ues,
        "t_download_start": np.full(n, t0),
        "t_download_end": np.where(reached_dl, t_dl, t_end),
        "t_compute_start": t_cs,
        "t_compute_end": t_ce_col,
        "t_upload_start": np.where(sending, t_ce, t_end),
        "t_upload_end": np.where(finished, t_ue, t_end),
        "bytes_up": np.where(sending, nbytes, 0),
        "bytes_down": np.full(n, dl_bytes, dtype=np.int64),
        "samples": got,
        "rate_up_bps": np.where(sending, rate, 0.0),
        "snr_up": snr,
        "attempts": ev_attempts,
        "energy_compute_j": energy_cp,
        "energy_radio_j": np.where(sending, power * on_air, 0.0),
        "bandwidth_hz": band,
        "cpu_hz": cpu_hz,
    }
    events = EventTable(rnd, columns, status, [r.behaviour for r in results])
    arrivals = [Arrival(selected[i], results[i].handle, 0, 1.0, skips[i]) for i in rows if gets[i]]
    critical = int(done_rows[counted][-1]) if counted.any() else (0 if n else None)
    discarded: dict[str, list[object]] = {}
    for i, st in enumerate(status):
        if st in ("lost", "dropped", "silent"):
            discarded.setdefault(st, []).append(results[i].handle)
    for reason, handles in discarded.items():
        driver.discard(handles, reason)
    driver.aggregate(rnd, arrivals)
    crit = None if critical is None else events.row(critical)
    record = build_record(rnd, t0, t_end, events, crit, dl_bytes)
    clock.vector_rounds += 1
    return t_end, bool(driver.end_round(record, events))


def _close(
    clock: Clock,
    rnd: int,
    selected: list[int],
    t0: float,
    order: NDArray[np.int64],
    t_ue: NDArray[np.float64],
    delivered: NDArray[np.bool_],
    silent: NDArray[np.bool_],
) -> tuple[float, int]:
    """The closing time (s) and how many of the completions (in ``order``) happened by then."""
    policy = clock.cfg.policy
    everyone = not silent.any()
    if not selected:
        return t0, 0
    last = float(t_ue[order[-1]]) if order.size else t0
    if policy.name == "deadline":
        assert policy.deadline_s is not None
        t_dead = t0 + policy.deadline_s
        if everyone and last < t_dead:
            return last, int(order.size)
        return t_dead, int(np.searchsorted(t_ue[order], t_dead, side="right"))
    if policy.name == "first_k":
        assert policy.k is not None
        hits = np.flatnonzero(delivered[order])
        if hits.size >= policy.k:
            t_k = float(t_ue[order[int(hits[policy.k - 1])]])
            # uploads ending at the same instant as the k-th were scheduled before the close: they complete
            return t_k, int(np.searchsorted(t_ue[order], t_k, side="right"))
    if everyone:
        return last, int(order.size)
    silent_ues = [selected[i] for i in np.flatnonzero(silent)]
    raise FedwaveError(
        f"round {rnd} can never close: UEs {silent_ues} went silent and policy "
        f"'{policy.name}' waits for messages that will not come; use policy 'deadline' "
        "(or first_k with k small enough)"
    )
