"""Errors of the results store: an unusable study directory, and a damaged one (with how to recover)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedwave.errors import FedwaveError


class StoreError(FedwaveError):
    """A study directory or its database cannot be opened, is corrupt, or is used out of order."""


#: Kinds of damage: rounds the database lost, rounds changed on disk, a checkpoint changed on disk.
DAMAGE_KINDS = ("lost", "changed", "checkpoint")


@dataclass(frozen=True)
class Damage:
    """One finding of a study check: which run (method, seed), the kind (:data:`DAMAGE_KINDS`) and what
    is wrong, in words."""

    run_id: str
    method: str
    seed: int | None
    kind: str
    what: str

    @property
    def label(self) -> str:
        """``run <id> (<method>, seed <seed>)``, the way messages name a run."""
        seed = "" if self.seed is None else f", seed {self.seed}"
        return f"run {self.run_id} ({self.method}{seed})"


def restart_command(study_dir: str | Path, run_ids: Sequence[str]) -> str:
    """The command line that restarts ``run_ids`` of the study in ``study_dir`` (shell-quoted)."""
    words = ["fedwave", "study", "restart", str(study_dir), *run_ids]
    return " ".join(shlex.quote(w) for w in words)


class DamagedStudyError(StoreError):
    """Stored results no longer match what was committed: changed values, a damaged checkpoint, or
    committed rounds that the database lost. The message names every damaged run and round and the
    command that restarts those runs (the other runs are kept)."""

    def __init__(
        self, study_dir: str | Path, damages: Sequence[Damage], restart: Sequence[str] | None = None
    ) -> None:
        self.study_dir = Path(study_dir)
        self.damages = list(damages)
        ids = list(dict.fromkeys(restart)) if restart is not None else self.run_ids
        lines = [f"study {study_dir} is damaged; its stored results cannot be trusted:"]
        lines += [f"  {d.label}: {d.what}" for d in self.damages]
        lines.append("Restart the damaged runs from round 0 (the other runs are kept):")
        lines.append("  " + restart_command(study_dir, ids))
        super().__init__("\n".join(lines))

    @property
    def run_ids(self) -> list[str]:
        """The damaged runs, each once, in the order they were found."""
        return list(dict.fromkeys(d.run_id for d in self.damages))
