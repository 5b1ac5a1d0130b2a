"""The runs of a study computed elsewhere — N local processes or Ray tasks — with ONE writer.

Workers never open the results store. A worker computes one run at a time and describes it as a stream
of messages (:func:`compute_run`): ``start`` (resumed from round r, or fresh), one ``round`` per
finished round (record, UE events, checkpoint bytes), then ``done`` (or ``failed``). The coordinator,
the only process that writes ``study.db``, applies them in order with the very transactions of a
sequential study (:class:`Committer`), so a study killed at any moment holds whole rounds only and
resumes with the same command to identical results: each run is deterministic and independent of which
worker computes it and of the order in which runs finish.

Local workers (``fedwave compare --workers N``, :func:`run_local`) stream each round as it finishes.
Each worker asks the kernel to SIGKILL it when the coordinator dies (``PR_SET_PDEATHSIG`` on Linux) and,
on every platform, exits when its parent process changes, so killing the coordinator (even with
SIGKILL) leaves no orphaned workers. Ray tasks (``--ray``, :mod:`fedwave.fl.rayrun`) return a run's
messages at once.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fedwave.engine.allocator import keep_freed_memory
from fedwave.report.errors import StoreError, restart_command

if TYPE_CHECKING:
    from fedwave.fl.study import RoundTick, RunLine, RunSpec
    from fedwave.report.store import ResultsStore

Message = tuple[Any, ...]
Send = Callable[[Message], None]
# What a worker needs to compute a run: run id, config (as a dict), checkpoint (round, bytes) or None.
Job = tuple[str, dict[str, Any], "tuple[int, bytes] | None"]


def make_job(run: RunSpec, checkpoint: tuple[int, bytes] | None) -> Job:
    """The picklable description of ``run``, resumed from ``checkpoint`` when the run can use one."""
    return (run.run_id, run.config.to_dict(), checkpoint)


def compute_run(job: Job, send: Send) -> None:
    """Compute the run of ``job``, sending ``start``, one ``round`` per finished round, then ``done``.

    A failure sends ``("failed", run_id, text)``; a checkpoint that cannot be restored sends
    ``("bad_checkpoint", run_id, round, text)``. Nothing is raised.
    """
    from fedwave.config import config_from_dict
    from fedwave.fl.checkpoint import CheckpointError, load_checkpoint, resumable, save_checkpoint
    from fedwave.fl.run import build_simulation

    run_id, data, checkpoint = job
    try:
        cfg = config_from_dict(data, f"run {run_id}")
        holder: dict[str, Any] = {}

        def commit(record: Any, events: Sequence[Any]) -> None:
            sim = holder["sim"]
            keep = resumable(sim)
            blob = save_checkpoint(sim, t_now=record.t_end, next_round=record.round + 1) if keep else None
            send(("round", run_id, record, list(events), blob))

        sim = build_simulation(cfg, commit, keep_records=False)  # sent to the coordinator
        holder["sim"] = sim
        resumed_from = None
        if checkpoint is not None and resumable(sim):
            try:
                load_checkpoint(sim, checkpoint[1])
            except CheckpointError as exc:
                send(("bad_checkpoint", run_id, checkpoint[0], str(exc)))
                return
            resumed_from = checkpoint[0] + 1
        send(("start", run_id, resumed_from))
        remaining = cfg.fl.rounds - sim.next_round
        if remaining > 0:
            sim.run_rounds(remaining)
    except Exception as exc:  # reported to the coordinator, which records the failure and stops
        send(("failed", run_id, f"{type(exc).__name__}: {exc}"))
        return
    send(("done", run_id))


class Committer:
    """Applies workers' messages to the store (the study's one writer), in the order they come."""

    def __init__(
        self,
        store: ResultsStore,
        runs: Sequence[RunSpec],
        on_round: RoundTick | None,
        on_run: RunLine | None,
        on_finished: Callable[[RunSpec], None],
    ) -> None:
        self.store = store
        self.runs = {r.run_id: r for r in runs}
        self.on_round = on_round
        self.on_run = on_run
        self.on_finished = on_finished
        self.resumed: dict[str, int | None] = {}
        self.last: dict[str, Any] = {}
        self.finished: set[str] = set()

    def begin(self, run: RunSpec) -> Job:
        """Mark ``run`` running and describe it for a worker (with its stored checkpoint, if any)."""
        self.store.set_status(run.run_id, "running")
        return make_job(run, self.store.last_checkpoint(run.run_id))

    def apply(self, msg: Message) -> None:
        """Store one message; raises what the sequential study would raise for a failed run."""
        kind, run_id = msg[0], msg[1]
        run = self.runs[run_id]
        if kind == "start":
            resumed_from = msg[2]
            self.store.delete_rounds_after(run_id, -1 if resumed_from is None else resumed_from - 1)
            self.resumed[run_id] = resumed_from
        elif kind == "round":
            _, _, record, events, blob = msg
            self.store.commit_round(run_id, record, events, blob)
            self.last[run_id] = record
            if self.on_round is not None:
                self.on_round(run, record)
        elif kind == "done":
            self.store.set_status(run_id, "done")
            self.finished.add(run_id)
            if self.on_run is not None:
                info = {"resumed_from": self.resumed.get(run_id), "last": self.last.get(run_id)}
                self.on_run(run, "finished", info)
            self.on_finished(run)
        elif kind == "failed":
            self.store.set_status(run_id, "failed", msg[2])
            raise RunFailed(f"run {run_id} ({run.method}, seed {run.seed}) failed: {msg[2]}")
        elif kind == "bad_checkpoint":
            raise StoreError(
                f"run {run_id} ({run.method}, seed {run.seed}): the checkpoint taken after round {msg[2]} "
                f"cannot be restored: {msg[3]}. Restart this run from round 0 (the other runs are kept): "
                f"{restart_command(self.store.study_dir, [run_id])}"
            )
        else:
            raise RuntimeError(f"unknown worker message {kind!r}")


class RunFailed(RuntimeError):
    """A run failed in a worker (the message names the run and the worker's exception)."""


# -- local worker processes ----------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _worker(jobs: Any, results: Any, parent: int) -> None:
    """A local worker: compute jobs until the ``None`` sentinel; stop if the coordinator is gone."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    keep_freed_memory()  # a spawned process starts with glibc's defaults again

    def send(msg: Message) -> None:
        if os.getppid() != parent:
            os._exit(1)
        results.put(msg)

    while True:
        job = jobs.get()
        if job is None:
            return
        compute_run(job, send)


def run_local(committer: Committer, todo: Sequence[RunSpec], workers: int) -> None:
    """Compute ``todo`` in ``workers`` spawned processes; the caller's process commits everything."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
    jobs = ctx.Queue()
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker, args=(jobs, results, os.getpid()), daemon=True, name=f"fedwave-worker-{i}"
        )
        for i in range(min(workers, len(todo)))
    ]
    for run in todo:
        jobs.put(committer.begin(run))
    for _ in procs:
        jobs.put(None)
    for p in procs:
        p.start()
    try:
        open_runs = {r.run_id for r in todo}
        while open_runs:
            try:
                msg = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RunFailed(
                        f"a study worker died (exit code {dead[0].exitcode}); run the same command again "
                        "to resume"
                    ) from None
                continue
            committer.apply(msg)
            if msg[0] == "done":
                open_runs.discard(msg[1])
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
