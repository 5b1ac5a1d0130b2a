"""Buffered asynchronous FL on the simulated clock (policy ``async``, FedBuff-like).

``concurrency`` UEs train at once. When a UE's message arrives (or is lost) the UE becomes idle, and the
BS samples a replacement among the idle UEs (``Driver.select(round, idle, 1)``) and sends it the current
model. After every ``buffer_k`` delivered messages the BS aggregates; that is one round. An update trained
on version v and aggregated when the BS is at version V has staleness s = V - v and weight 1/sqrt(1 + s).

Radio: the FDMA band is split equally among the ``concurrency`` slots (TDMA: the whole band, one UE at a
time, order of arrival). The first dispatch is one broadcast (``downlink.mode: broadcast``); later ones,
and all in unicast mode, are unicasts on the full band, one at a time. Fading and packet errors of a
dispatch come from the streams (seed, "fading"/"errors", "async", ue, n) for the UE's n-th dispatch.
A round's record holds the UEs whose message arrived or was lost during it; UEs still in flight when the
run stops are not recorded, and a resumed async run starts with a fresh set of UEs.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from fedwave.channel.fading import sample_fading_power
from fedwave.rng import numpy_generator
from fedwave.sim.fifo import FifoChannel
from fedwave.sim.protocol import Arrival, Driver
from fedwave.sim.rounds import checked_selection
from fedwave.sim.timeline import build_record
from fedwave.sim.ue import Downlink, Job, QueuedDownlink, TdmaUplink, Uplink, run_until, ue_process

if TYPE_CHECKING:
    from fedwave.sim.clock import Clock


def staleness_weight(staleness: int) -> float:
    """Weight 1 / sqrt(1 + s) of an update of staleness s."""
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
    cell = clock.cell
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
        fading = np.empty(len(ues))
        for i, ue in enumerate(ues):
            n = dispatches[ue]
            dispatches[ue] += 1
            keys.append(("async", ue, n))
            rng = numpy_generator(clock.seed, "fading", "async", ue, n)
            fading[i] = sample_fading_power(rng, 1, cell.fading, cell.rician_k)[0]
        key_of = dict(zip(ues, keys))
        jobs = clock.make_jobs(
            ues,
            round=rnd,
            version=version,
            fading=fading,
            bandwidth_hz=np.full(len(ues), band),
            error_keys=lambda ue: key_of[ue],
        )
        dl_bytes = driver.broadcast_bytes()
        downlink: Downlink
        if first and cfg.downlink.mode == "broadcast":
            downlink = clock.group_downlink(env, jobs, dl_bytes)
            bytes_down += dl_bytes
        else:
            downlink = QueuedDownlink(dl_channel, dl_bytes, cfg.access.header_bytes)
            bytes_down += dl_bytes * len(jobs)
        for job in jobs:
            idle.discard(job.ue)
            del idle_sorted[bisect.bisect_left(idle_sorted, job.ue)]
            env.process(ue_process(env, job, downlink, ctx))

    def base_station() -> Generator[simpy.Event, Any, None]:
        nonlocal version, rnd, t_round, bytes_down, t_last
        chosen = driver.select(rnd, list(idle_sorted), concurrency)
        dispatch(checked_selection(chosen, idle, concurrency), True)
        buffer: list[Job] = []
        finished: list[Job] = []
        while True:
            job: Job = yield inbox.get()
            assert job.result is not None
            job.event.round = rnd
            if job.delivered:
                job.event.status = "skipped" if job.result.skip else "arrived"
                buffer.append(job)
            else:
                job.event.status = "lost"
            job.finalize(env.now)
            finished.append(job)
            idle.add(job.ue)
            bisect.insort(idle_sorted, job.ue)
            if len(buffer) >= buffer_k:
                arrivals = []
                for j in buffer:
                    assert j.result is not None
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
    clock.events_processed += run_until(env, bs)
    return t_last
