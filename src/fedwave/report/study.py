"""Read-only access to a finished (or running) study: :func:`load_study` returns a :class:`Study`.

The database is opened read-only (``mode=ro``) for each query, so loading a study never changes it and
works while workers are still writing. DataFrames are read on first access and cached.

Loading checks the study first (:mod:`fedwave.report.integrity`): a value changed on disk, a damaged
checkpoint or rounds the database lost raise :class:`~fedwave.report.errors.DamagedStudyError`, which
names the runs and rounds and the command that restarts them, so no table or report shows such values.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from fedwave.report import attacks as attack_rows
from fedwave.report import frames, integrity, ledger
from fedwave.report.errors import Damage, DamagedStudyError, StoreError
from fedwave.report.migrate import check_database
from fedwave.report.schema import DB_NAME


class Study:
    """A study directory opened read-only: its spec, runs, rounds and UE events as DataFrames.

    Units follow :mod:`fedwave.records`: simulated seconds, bytes, joules.
    """

    def __init__(self, study_dir: str | os.PathLike[str], *, verify: bool = True) -> None:
        self.study_dir = Path(study_dir)
        self.db_path = self.study_dir / DB_NAME
        if not self.study_dir.is_dir():
            raise StoreError(f"{self.study_dir} is not a study directory (no such directory)")
        if not self.db_path.is_file():
            self._raise_if_lost()
            raise StoreError(f"{self.study_dir} is not a study directory: it has no {DB_NAME}")
        with self._connect() as conn:
            if not self._has_tables(conn):
                self._raise_if_lost()
            check_database(conn, self.db_path)
            row = conn.execute("SELECT name, created, spec, versions FROM studies").fetchone()
        if row is None:
            self._raise_if_lost()
            raise StoreError(f"{self.db_path} holds no study yet (ensure_study was never called)")
        if verify:
            self.check()
        self.name: str = row[0]
        self.created: str = row[1]
        self.spec: dict[str, Any] = json.loads(row[2])
        self.versions: dict[str, str] = json.loads(row[3])

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        uri = self.db_path.resolve().as_uri() + "?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True, timeout=30.0)) as conn:
                yield conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read {self.db_path}: {exc}") from exc

    def damage(self) -> list[Damage]:
        """Every finding of the integrity checks (see :meth:`ResultsStore.damage`), empty if sound.

        The ledger is read before the tables, and a run that seems to have lost rounds is checked
        once more, so a writer committing or resuming meanwhile causes no false alarm.
        """
        found = self._find_damage()
        if any(d.kind == "lost" for d in found):
            again = {(d.run_id, d.what) for d in self._find_damage()}
            found = [d for d in found if (d.run_id, d.what) in again]
        return found

    def _find_damage(self) -> list[Damage]:
        entries = ledger.read_entries(self.study_dir)
        with self._connect() as conn:
            conn.execute("BEGIN")  # one snapshot for every table
            return integrity.find_damage(conn, entries)

    def check(self) -> None:
        """Raise :class:`DamagedStudyError` naming every damaged run and round, if there is any."""
        found = self.damage()
        if found:
            raise DamagedStudyError(self.study_dir, found)

    def table_counts(self) -> dict[str, int]:
        """Rows per table (``runs``, ``rounds``, ``ue_events``, ``checkpoints``, ``attacks``) and ledger
        entries."""
        with self._connect() as conn:
            counts = {
                t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in ("runs", "rounds", "ue_events", "checkpoints")
            }
            counts["attacks"] = sum(integrity.attack_counts(conn).values())
        counts["ledger"] = len(ledger.read_entries(self.study_dir))
        return counts

    @staticmethod
    def _has_tables(conn: sqlite3.Connection) -> bool:
        try:
            return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        except sqlite3.DatabaseError:
            return True  # not SQLite at all: check_database says so

    def _raise_if_lost(self) -> None:
        """The database is missing or unusable: if the ledger shows committed rounds, say they were lost."""
        entries = [e for e in ledger.read_entries(self.study_dir) if e.rounds > 0]
        if entries:
            raise DamagedStudyError(
                self.study_dir,
                [
                    Damage(
                        e.run_id,
                        e.method,
                        e.seed,
                        "lost",
                        f"had {e.rounds} rounds committed (rounds 0-{e.last_round}), but {DB_NAME} is "
                        "missing, empty or unreadable: committed rounds were lost",
                    )
                    for e in entries
                ],
            )

    @cached_property
    def runs(self) -> pd.DataFrame:
        """One row per run (see :meth:`ResultsStore.runs`)."""
        with self._connect() as conn:
            return frames.read_runs(conn)

    @cached_property
    def rounds(self) -> pd.DataFrame:
        """Every round of every run, joined with method and seed, plus ``cum_bytes_up`` (bytes)."""
        with self._connect() as conn:
            return frames.read_rounds(conn)

    @cached_property
    def ue_events(self) -> pd.DataFrame:
        """Every UE event of every run, joined with method and seed."""
        with self._connect() as conn:
            return frames.read_ue_events(conn)

    @cached_property
    def attacks(self) -> pd.DataFrame:
        """One row per attacked run: leakage numbers, threat model, per-sample metrics, grid PNG (see
        :mod:`fedwave.report.attacks`); empty for a study without attacks."""
        with self._connect() as conn:
            return attack_rows.read_attacks(conn)

    def events(self, run_id: str | None = None, round: int | None = None) -> pd.DataFrame:
        """UE events of one run and/or round, read without loading the whole table."""
        with self._connect() as conn:
            return frames.read_ue_events(conn, run_id, round)

    @property
    def methods(self) -> list[str]:
        """Sorted method labels of the study's runs."""
        return sorted(set(self.runs["method"]))


def load_study(study_dir: str | os.PathLike[str], *, verify: bool = True) -> Study:
    """Open the study in ``study_dir`` read-only; :class:`StoreError` if it is not a readable study.

    ``verify`` (default) first checks every round's digest, every checkpoint's SHA-256 and the ledger,
    raising :class:`DamagedStudyError` on any damage.
    """
    return Study(study_dir, verify=verify)
