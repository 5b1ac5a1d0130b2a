"""One synchronous round on the simulated clock (policies ``sync``, ``deadline``, ``first_k``).

select -> local updates (host) -> broadcast -> UE processes -> the policy's BS process closes the round
-> discard what will not count -> aggregate -> end_round. Each round runs in its own SimPy environment
starting at the previous round's end, so a round depends only on (config, seed, round, driver) and a run
resumed at round r is exact. UEs still busy when the round closes are cut there: status "dropped",
timeline and energy up to the close. Under FDMA the band is split among the UEs that upload an update
(see :meth:`Clock.make_jobs`).
"""

from __future__ import annotations

from collections.abc import Container, Generator, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import simpy

from fedwave.errors import FedwaveError
from fedwave.rng import Key
from fedwave.sim.fifo import FifoChannel
from fedwave.sim.protocol import Arrival, Driver, LocalResult, check_local_result
from fedwave.sim.timeline import build_record
from fedwave.sim.ue import Job, RoundCannotClose, TdmaUplink, Uplink, run_until, ue_process
from fedwave.sim.vround import run_vector_round

if TYPE_CHECKING:
    from fedwave.sim.clock import Clock


class RoundState:
    """What the BS knows during a round: completions so far and events to wait on.

    Attributes:
        t_start: round start (s).
        completed: jobs whose upload ended (delivered or lost), in order of completion.
        received: number of messages delivered so far (updates and "no update" messages).
        all_done: fires when every selected UE's upload has ended.
    """

    def __init__(self, env: simpy.Environment, n_selected: int, t_start: float) -> None:
        self.env = env
        self.t_start = t_start
        self.n_selected = n_selected
        self.completed: list[Job] = []
        self.received = 0
        self.all_done = env.event()
        self._waiting: dict[int, simpy.Event] = {}
        if n_selected == 0:
            self.all_done.succeed()

    def arrive(self, job: Job) -> None:
        """A UE's upload ended (called by its process)."""
        self.completed.append(job)
        if job.delivered:
            job.rank = self.received
            self.received += 1
            waiter = self._waiting.pop(self.received, None)
            if waiter is not None:
                waiter.succeed()
        if len(self.completed) == self.n_selected:
            self.all_done.succeed()

    def received_event(self, k: int) -> simpy.Event:
        """An event that fires when the k-th message has been delivered."""
        ev = self.env.event()
        if self.received >= k:
            ev.succeed()
        else:
            self._waiting[k] = ev
        return ev


class ClosingRule(Protocol):
    """The part of a round policy that the round needs."""

    def closing(self, env: simpy.Environment, state: RoundState) -> Generator[simpy.Event, Any, None]:
        """The BS's process: returns when the round closes."""
        ...

    def counts(self, state: RoundState, job: Job) -> bool:
        """Whether a completed job counts (False: it completed after the close, at the same instant)."""
        ...


def checked_selection(selected: Iterable[int], allowed: Container[int], count: int) -> list[int]:
    """Validate the driver's choice: at most ``count`` distinct ids, each in ``allowed`` (a set or range)."""
    chosen = [int(u) for u in selected]
    if isinstance(allowed, range) and allowed.step == 1:
        inside = not chosen or (min(chosen) >= allowed.start and max(chosen) < allowed.stop)
    else:
        inside = all(u in allowed for u in chosen)
    if len(chosen) > count or len(set(chosen)) != len(chosen) or not inside:
        raise ValueError(
            f"Driver.select must return at most {count} distinct ids among the available UEs, "
            f"got {chosen[:20]}"
        )
    return chosen


def select_and_train(
    clock: Clock, driver: Driver, rnd: int, clients_per_round: int
) -> tuple[list[int], list[LocalResult]]:
    """The round's UEs (the driver's checked choice, sorted) and their local updates (host work), each
    checked (:func:`~fedwave.sim.protocol.check_local_result`)."""
    chosen = driver.select(rnd, range(clock.num_ues), clients_per_round)
    selected = sorted(checked_selection(chosen, range(clock.num_ues), clients_per_round))
    results = driver.local_updates(rnd, selected, rnd) if selected else []
    if len(results) != len(selected):
        raise ValueError(
            f"Driver.local_updates must return one result per UE: {len(selected)} UEs, {len(results)} results"
        )
    for ue, result in zip(selected, results):
        check_local_result(ue, result)
    return selected, results


def run_round(
    clock: Clock, driver: Driver, rule: ClosingRule, rnd: int, clients_per_round: int, t0: float
) -> tuple[float, bool]:
    """Simulate round ``rnd`` from time ``t0`` (s); return (end time in s, whether to continue)."""
    cfg = clock.cfg
    observe = getattr(driver, "observe_radio", None)
    # an optional driver method: the channel estimate for channel-aware rules (unless it says it needs none)
    if observe is not None and getattr(driver, "wants_radio", True):
        observe(clock.radio_view(rnd, t0))
    if cfg.access.scheme == "aircomp":
        from fedwave.sim.aircomp import run_aircomp_round

        return run_aircomp_round(clock, driver, rnd, clients_per_round, t0)
    selected, results = select_and_train(clock, driver, rnd, clients_per_round)
    dl_bytes = driver.broadcast_bytes() if selected else 0
    if clock.vectorised:
        done = run_vector_round(clock, driver, rnd, selected, results, dl_bytes, t0)
        if done is not None:
            return done
    env = simpy.Environment(initial_time=t0)
    keys: list[tuple[Key, ...]] = [(rnd, ue) for ue in selected]
    plan = clock.plan_uplink(selected, results, keys, dl_bytes, t_s=t0) if selected else None
    jobs = clock.make_jobs(selected, results, round=rnd, version=rnd, keys=keys, plan=plan, t_s=t0)
    state = RoundState(env, len(jobs), t0)
    uplink = TdmaUplink(FifoChannel(env)) if cfg.access.scheme == "tdma" else Uplink()
    ctx = clock.job_context(driver, uplink, state.arrive)
    downlink = clock.group_downlink(env, jobs, dl_bytes)
    for job in jobs:
        env.process(ue_process(env, job, downlink, ctx))
    bs = env.process(rule.closing(env, state))
    try:
        clock.events_processed += run_until(env, bs)
    except RoundCannotClose:
        silent = [j.ue for j in jobs if j.result.silent]
        raise FedwaveError(
            f"round {rnd} can never close: UEs {silent} went silent and policy "
            f"'{cfg.policy.name}' waits for messages that will not come; use policy 'deadline' "
            "(or first_k with k small enough)"
        ) from None
    t_end = env.now

    arrivals: list[Arrival] = []
    discarded: dict[str, list[object]] = {}
    critical: Job | None = None
    for job in state.completed:
        if not rule.counts(state, job):
            continue
        if job.delivered:
            job.event.status = "skipped" if job.result.skip else "arrived"
            arrivals.append(Arrival(job.ue, job.result.handle, 0, 1.0, job.result.skip))
        else:
            job.event.status = "lost"
        critical = job
    for job in jobs:
        if job.result.silent:
            job.event.status = "silent"
        job.finalize(t_end)
        if job.event.status in ("lost", "dropped", "silent"):
            discarded.setdefault(job.event.status, []).append(job.result.handle)
    if critical is None and jobs:
        critical = jobs[0]
    events = [job.event for job in jobs]
    unicast = cfg.downlink.mode == "unicast"
    bytes_down = sum(e.bytes_down for e in events) if unicast else dl_bytes
    for reason, handles in discarded.items():
        driver.discard(handles, reason)
    driver.aggregate(rnd, arrivals)
    record = build_record(rnd, t0, t_end, events, critical.event if critical else None, bytes_down)
    if plan is not None:
        record.extra["allocation_fallback"] = float(plan.fallback)
    return t_end, bool(driver.end_round(record, events))
