"""The attack step of a study: leakage of each finished run (``fedwave compare --attack NAME``).

With ``attack.in_studies`` each finished run of a study is attacked
(:func:`fedwave.privacy.attacks.leakage.measure_leakage`) and its leakage committed to the store in one
transaction (:meth:`~fedwave.report.store.ResultsStore.commit_attack`). The attack works on copies and its
own random streams, after the run's last round, so the run's records are the same with and without it. A
study killed during an attack resumes with that attack; attacks already stored are not redone.

``attack.at_round`` names the attacked model: null or 0 the untrained model that every run broadcasts in
round 0 (the classic setting, and the round where optimisation attacks such as DLG and IG do best: the
default), N the global model after N rounds (the run is replayed to round N, deterministically), and
``final`` the model the run ended with (taken from the run itself, or restored from its last checkpoint
when the study resumes between the run and its attack).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from torch import nn

from fedwave.errors import ConfigError
from fedwave.fl.checkpoint import load_checkpoint, resumable
from fedwave.fl.run import Simulation, build_simulation
from fedwave.report.store import ResultsStore

if TYPE_CHECKING:
    from fedwave.fl.study import RunSpec
    from fedwave.report.attacks import LeakageRecord

#: ``on_attack(run, "attacking", None)`` before a run's attack, ``(run, "attacked", record)`` after it.
AttackLine = Callable[["RunSpec", str, "LeakageRecord | None"], None]


def check_attack_settings(runs: Sequence[RunSpec]) -> None:
    """Refuse ``attack.at_round`` beyond a run's last round when its runs are attacked (ConfigError)."""
    for run in runs:
        a, rounds = run.config.attack, run.config.fl.rounds
        if a.in_studies and isinstance(a.at_round, int) and a.at_round > rounds:
            raise ConfigError(
                f"run '{run.method}', seed {run.seed}: attack.at_round={a.at_round} is after the run's last "
                f"round (fl.rounds={rounds}); use a round up to {rounds}, or attack.at_round=final"
            )


def attack_run(
    store: ResultsStore, run: RunSpec, sim: Simulation | None, on_attack: AttackLine | None = None
) -> None:
    """Attack the finished ``run`` and commit its leakage (``sim``: the run, if it just finished in this
    process; else its final model is restored when needed)."""
    from fedwave.privacy.attacks.leakage import measure_leakage

    if on_attack is not None:
        on_attack(run, "attacking", None)
    model = final_model(store, run, sim) if run.config.attack.at_round == "final" else None
    record = measure_leakage(run.config, model)
    store.commit_attack(run.run_id, record)
    if on_attack is not None:
        on_attack(run, "attacked", record)


def final_model(store: ResultsStore, run: RunSpec, sim: Simulation | None) -> tuple[nn.Module, int]:
    """The global model ``run`` ended with and its rounds: from the run itself, else from its last
    checkpoint, else (no checkpoint: an async run) by replaying the run, which is deterministic."""
    if sim is None:
        sim = build_simulation(run.config, keep_records=False)
        checkpoint = store.last_checkpoint(run.run_id) if resumable(sim) else None
        if checkpoint is not None:
            load_checkpoint(sim, checkpoint[1])
        else:
            sim.run_rounds(run.config.fl.rounds)
    return sim.driver.bs.model, sim.next_round
