"""Read-only access to a finished (or running) study: :func:`load_study` returns a :class:`Study`.

The database is opened read-only (``mode=ro``) for each query, so loading a study never changes it and
works while workers are still writing. DataFrames are read on first access and cached.
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

from fedwave.report import frames
from fedwave.report.schema import DB_NAME
from fedwave.report.store import StoreError, check_database


class Study:
    """A study directory opened read-only: its spec, runs, rounds and UE events as DataFrames.

    Units follow :mod:`fedwave.records`: simulated seconds, bytes, joules.
    """

    def __init__(self, study_dir: str | os.PathLike[str]) -> None:
        self.study_dir = Path(study_dir)
        self.db_path = self.study_dir / DB_NAME
        if not self.study_dir.is_dir():
            raise StoreError(f"{self.study_dir} is not a study directory (no such directory)")
        if not self.db_path.is_file():
            raise StoreError(f"{self.study_dir} is not a study directory: it has no {DB_NAME}")
        with self._connect() as conn:
            check_database(conn, self.db_path)
            row = conn.execute("SELECT name, created, spec, versions FROM studies").fetchone()
        if row is None:
            raise StoreError(f"{self.db_path} holds no study yet (ensure_study was never called)")
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

    def events(self, run_id: str | None = None, round: int | None = None) -> pd.DataFrame:
        """UE events of one run and/or round, read without loading the whole table."""
        with self._connect() as conn:
            return frames.read_ue_events(conn, run_id, round)

    @property
    def methods(self) -> list[str]:
        """Sorted method labels of the study's runs."""
        return sorted(set(self.runs["method"]))


def load_study(study_dir: str | os.PathLike[str]) -> Study:
    """Open the study in ``study_dir`` read-only; :class:`StoreError` if it is not a readable study."""
    return Study(study_dir)
