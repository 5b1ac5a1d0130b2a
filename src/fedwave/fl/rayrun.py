"""A study's runs as Ray tasks (``fedwave compare --ray [ADDRESS]``); Ray is an optional extra.

Each run is one Ray task that returns the run's messages (:func:`fedwave.fl.parallel.compute_run`); the
coordinator commits them as the tasks finish, so ``study.db`` keeps one writer. Without an address a
local Ray is started with ``num_cpus`` CPUs (usage statistics off) and stopped at the end; with one, the
study joins that cluster (whose workers must have fedwave installed). A Ray already initialised in this
process (e.g. by a test fixture) is used as it is and left running.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fedwave.engine.allocator import keep_freed_memory
from fedwave.errors import ConfigError
from fedwave.fl.parallel import Committer, Job, Message, compute_run

if TYPE_CHECKING:
    from fedwave.fl.study import RunSpec

LOCAL = "local"  # ``--ray`` without an address


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray, an optional extra: pip install 'fedwave[ray]' (or pip install ray==2.55.1)"
        ) from None
    return ray


def compute_run_messages(job: Job) -> list[Message]:
    """One run computed in a Ray worker: all its messages, in order."""
    out: list[Message] = []
    keep_freed_memory()  # once per worker process (fedwave.engine.allocator)
    compute_run(job, out.append)
    return out


def run_ray(committer: Committer, todo: Sequence[RunSpec], address: str, num_cpus: int) -> None:
    """Compute ``todo`` as Ray tasks on ``address`` (``"local"``: a local Ray of ``num_cpus`` CPUs)."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no FutureWarning on CPU clusters
    started = False
    if not ray.is_initialized():
        env = {"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}}
        if address == LOCAL:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                runtime_env=env,
            )
        else:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, runtime_env=env)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(compute_run_messages)
        pending = [task.remote(committer.begin(run)) for run in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                for msg in ray.get(ref):
                    committer.apply(msg)
    finally:
        if started:
            ray.shutdown()
