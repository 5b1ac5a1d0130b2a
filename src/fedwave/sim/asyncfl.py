"""Buffered asynchronous FL on the simulated clock (policy ``async``, FedBuff: Nguyen et al. 2022).

``concurrency`` UEs train at once. When the BS dispatches a UE it sends it the current model (version v)
and the host computes what the UE will send (``Driver.local_updates``). When a UE's message arrives (or
is lost) the UE becomes idle and the BS samples a replacement among the idle UEs
(``Driver.select(round, idle, 1)``). Every delivered message goes into the BS's buffer; after every
``buffer_k`` of them the BS aggregates (one round) and its version becomes V + 1. An update trained on
version v and aggregated at version V has staleness s = V - v and the weight 1/sqrt(1 + s), applied as an
absolute factor (FedBuff): a uniformly stale buffer moves the model less, it is not renormalised away.

Every dispatch has its own handle, so a UE dispatched twice before an aggregation is trained twice and
each update is aggregated once. Lost messages are discarded at once (reason "lost"); updates still in
flight when the run stops are discarded with the reason "in_flight".

Radio: the FDMA band is split equally among the ``concurrency`` slots (TDMA: the whole band, one UE at a
time, order of arrival). The first dispatch is one broadcast (``downlink.mode: broadcast``); later ones,
and all in unicast mode, are unicasts on the full band, one at a time. A UE's n-th dispatch uses the link
keys ("async", ue, n). A round's record holds the UEs whose message arrived or was lost during it; a
resumed async run starts with a fresh set of UEs.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from fedwave.errors import FedwaveError
from fedwave.sim.fifo import FifoChannel
from fedwave.sim.protocol import Arrival, Driver
from fedwave.sim.rounds import checked_selection
from fedwave.sim.timeline import build_record
from fedwave.sim.ue import Downlink, Job, RoundCannotClose, TdmaUplink, Uplink, run_until, ue_process

if TYPE_CHECKING:
    from fedwave.sim.clock import Clock


def staleness_weight(staleness: int) -> float:
    """Weight 1 / sqrt(1 + s) of an update of staleness s (FedBuff's polynomial staleness scaling)."""
    return 1.0 / math.sqrt(1.0 + staleness)


def run_async(
    clock: Clock,
    driver: Driver,
    *,
    buffer_k: int,
    concurrency: int,
    rounds: int,
    start_round: int,
    t_start: float,
) -> float:
    """Run ``rounds`` asynchronous rounds (aggregations) from ``t_start`` (s); return the last one's time."""
    cfg = clock.cfg
    env = simpy.Environment(initial_time=t_start)
    scheme_tdma = cfg.access.scheme == "tdma"
    band = cfg.access.bandwidth_hz if scheme_tdma else cfg.access.bandwidth_hz / concurrency
    uplink = TdmaUplink(FifoChannel(env)) if scheme_tdma else Uplink()
    dl_channel = FifoChannel(env)
    inbox = simpy.Store(env)
    ctx = clock.job_context(driver, uplink, inbox.put)
    dispatches = [0] * clock.num_ues
    idle = set(range(clock.num_ues))
    idle_sorted = list(range(clock.num_ues))  # the same ids, ascending, for Driver.select
    in_flight: dict[object, Job] = {}
    version = start_round
    rnd = start_round
    t_round = t_start
    bytes_down = 0
    t_last = t_start

    def dispatch(ues: list[int], first: bool) -> None:
        nonlocal bytes_down
        if not ues:
            return
        keys = []
        for ue in ues:
            keys.append(("async", ue, dispatches[ue]))
            dispatches[ue] += 1
        results = driver.local_updates(rnd, ues, version)
        jobs = clock.make_jobs(
            ues, results, round=rnd, version=version, keys=keys, bandwidth_hz=[band] * len(ues), t_s=env.now
        )
        dl_bytes = driver.broadcast_bytes()
        downlink: Downlink
        if first and cfg.downlink.mode == "broadcast":
            downlink = clock.group_downlink(env, jobs, dl_bytes)
            bytes_down += dl_bytes
        else:
            downlink = clock.group_downlink(env, jobs, dl_bytes, unicast=True, channel=dl_channel)
            bytes_down += dl_bytes * len(jobs)
        for job in jobs:
            idle.discard(job.ue)
            del idle_sorted[bisect.bisect_left(idle_sorted, job.ue)]
            in_flight[job.result.handle] = job
            env.process(ue_process(env, job, downlink, ctx))

    def base_station() -> Generator[simpy.Event, Any, None]:
        nonlocal version, rnd, t_round, bytes_down, t_last
        chosen = driver.select(rnd, list(idle_sorted), concurrency)
        dispatch(checked_selection(chosen, idle, concurrency), True)
        buffer: list[Job] = []
        finished: list[Job] = []
        while True:
            job: Job = yield inbox.get()
            in_flight.pop(job.result.handle, None)
            job.event.round = rnd
            if job.delivered:
                job.event.status = "skipped" if job.result.skip else "arrived"
                buffer.append(job)
            else:
                job.event.status = "lost"
                driver.discard([job.result.handle], "lost")
            job.finalize(env.now)
            finished.append(job)
            idle.add(job.ue)
            bisect.insort(idle_sorted, job.ue)
            if len(buffer) >= buffer_k:
                arrivals = []
                for j in buffer:
                    s = version - j.version
                    j.event.staleness = s
                    arrivals.append(Arrival(j.ue, j.result.handle, s, staleness_weight(s), j.result.skip))
                driver.aggregate(rnd, arrivals)
                version += 1
                events = [j.event for j in finished]
                record = build_record(rnd, t_round, env.now, events, job.event, bytes_down)
                keep = driver.end_round(record, events)
                rnd += 1
                t_round = t_last = env.now
                bytes_down = 0
                buffer, finished = [], []
                if not keep or rnd >= start_round + rounds:
                    return
            dispatch(checked_selection(driver.select(rnd, list(idle_sorted), 1), idle, 1), False)

    bs = env.process(base_station())
    try:
        clock.events_processed += run_until(env, bs)
    except RoundCannotClose:
        silent = sorted(j.ue for j in in_flight.values() if j.result.silent)
        raise FedwaveError(
            f"async round {rnd} can never close: every training slot is held by a UE that went silent "
            f"({silent}); lower faults.fraction or raise wireless.policy.concurrency"
        ) from None
    if in_flight:
        driver.discard(list(in_flight), "in_flight")
    return t_last
