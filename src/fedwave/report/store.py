"""The results store: one SQLite database (``study.db``) per study directory.

Every round is committed in one transaction together with its UE events and the run's checkpoint, so a
process killed at any moment (``kill -9``, power loss) leaves either the whole round or none of it. The
database runs in WAL mode with ``synchronous=FULL`` (a committed round survives a power cut) and a busy
timeout, so several worker processes may write runs of one study at once.

Every round and attack result carries a digest and every checkpoint a SHA-256, and a ledger beside the
database counts each run's committed rounds and attack results (:mod:`fedwave.report.integrity`);
:meth:`ResultsStore.check` reports values changed on disk and rows the database lost. Nothing stores the
directory's path or name, so a study directory can be moved or renamed.

Bookkeeping times (``created``, ``started``, ``finished``) are host UTC timestamps in ISO 8601; every
time inside a record is simulated seconds. The schema is in :mod:`fedwave.report.schema`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from fedwave.errors import ConfigError
from fedwave.records import RoundRecord, UEEvent
from fedwave.report import attacks as attack_rows
from fedwave.report import frames, integrity, ledger, migrate
from fedwave.report.errors import Damage, DamagedStudyError, StoreError
from fedwave.report.migrate import check_database
from fedwave.report.schema import (
    ATTACKS_DDL,
    DB_NAME,
    DDL,
    EVENT_COLUMNS,
    ROUND_COLUMNS,
    RUN_STATUSES,
    SCHEMA_VERSION,
    TABLE_COLUMNS,
    coerce,
)
from fedwave.report.specs import canonical_json, spec_differences
from fedwave.report.versions import software_versions

#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0


__all__ = [
    "BUSY_TIMEOUT_S",
    "ResultsStore",
    "StoreError",
    "canonical_json",
    "check_database",
    "spec_differences",
]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ResultsStore:
    """Read-write access to the study database in ``study_dir`` (created with its schema if missing).

    A database of an older schema version is upgraded on opening (see :mod:`fedwave.report.migrate`);
    ``upgraded_from`` then holds the old version (else ``None``).
    """

    def __init__(self, study_dir: str | os.PathLike[str]) -> None:
        self.study_dir = Path(study_dir)
        self.db_path = self.study_dir / DB_NAME
        if self.study_dir.exists() and not self.study_dir.is_dir():
            raise StoreError(f"study directory {self.study_dir} exists and is not a directory")
        try:
            self.study_dir.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open study database {self.db_path}: {exc}") from exc
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{self.db_path} is not a usable study database ({exc})") from exc
        except StoreError:
            self._conn.close()
            raise
        self._study: str | None = None

    def _setup(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self.upgraded_from: int | None = None
        with self._transaction():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise StoreError(f"{self.db_path} is an SQLite database but not a fedwave study")
                for stmt in DDL:
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version in migrate.UPGRADABLE and set(TABLE_COLUMNS) <= self._tables():
                migrate.upgrade_v1(conn)
                self.upgraded_from = version
            if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                conn.execute(ATTACKS_DDL)  # a study written before attack results gains the table
        if self.upgraded_from is not None:
            migrate.write_ledger(conn, self.study_dir)
        check_database(conn, self.db_path)

    def _tables(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; any exception rolls everything back and propagates."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- study and runs -------------------------------------------------------------------------------

    def study_name(self) -> str | None:
        """The name of the study stored here, ``None`` before :meth:`ensure_study`."""
        row = self._conn.execute("SELECT name FROM studies").fetchone()
        return None if row is None else str(row[0])

    def study_spec(self) -> dict[str, Any] | None:
        """The stored spec of the study, ``None`` before :meth:`ensure_study`."""
        row = self._conn.execute("SELECT spec FROM studies").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def ensure_study(self, name: str, spec: dict[str, Any]) -> None:
        """Record the study ``name`` with ``spec`` (base config, varied keys, seeds ...) on first call.

        Later calls (a resume) compare ``spec`` with the stored one and raise :class:`ConfigError` naming
        every differing key. A directory holds one study: another name is refused too. The software
        versions are recorded at creation, outside the compared spec.
        """
        text = canonical_json(spec)
        with self._transaction() as conn:
            row = conn.execute("SELECT name, spec FROM studies").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO studies (name, created, spec, versions) VALUES (?, ?, ?, ?)",
                    (name, _now(), text, canonical_json(software_versions())),
                )
            elif row[0] != name:
                raise ConfigError(f"{self.study_dir} holds study {row[0]!r}, not {name!r}")
            elif row[1] != text and (diffs := spec_differences(json.loads(row[1]), json.loads(text))):
                # equal text is a match; otherwise equal values are too (1 and 1.0, say)
                raise ConfigError(
                    f"study {name!r} in {self.study_dir} was created with another spec; "
                    "refusing to mix results. Differences:\n  " + "\n  ".join(diffs)
                )
        self._study = name

    def ensure_run(
        self, run_id: str, method: str, seed: int, config: dict[str, Any], varied: dict[str, Any]
    ) -> str:
        """Insert the run as ``pending`` if new; return its status.

        An existing run must have the same method, seed, config and varied values (ConfigError if not).
        """
        if self._study is None:
            row = self._conn.execute("SELECT name FROM studies").fetchone()
            if row is None:
                raise StoreError("call ensure_study() before ensure_run()")
            self._study = str(row[0])
        cfg, var = canonical_json(config), canonical_json(varied)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT method, seed, config, varied, status FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO runs (run_id, study, method, seed, config, varied, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                    (run_id, self._study, method, int(seed), cfg, var),
                )
                return "pending"
        if (row[0], row[1]) != (method, int(seed)):
            raise ConfigError(
                f"run {run_id!r} is stored as method {row[0]!r} seed {row[1]}, given {method!r} seed {seed}"
            )
        diffs = []
        for stored, given, what in ((row[2], cfg, "config"), (row[3], var, "varied")):
            if stored != given:
                diffs += spec_differences(json.loads(stored), json.loads(given), what)
        if diffs:
            raise ConfigError(f"run {run_id!r} is stored with another config:\n  " + "\n  ".join(diffs))
        return str(row[4])

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Set a run's status (and error text, ``None`` to clear it).

        ``running`` stamps ``started`` the first time and clears ``finished``; ``done`` and ``failed``
        stamp ``finished`` (host UTC).
        """
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        now = _now()
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, error = ?, "
                "started = CASE WHEN ? = 'running' THEN COALESCE(started, ?) ELSE started END, "
                "finished = CASE WHEN ? IN ('done', 'failed') THEN ? "
                "WHEN ? = 'running' THEN NULL ELSE finished END "
                "WHERE run_id = ?",
                (status, error, status, now, status, now, status, run_id),
            )
            if cur.rowcount != 1:
                raise StoreError(f"unknown run {run_id!r}: call ensure_run() first")

    # -- rounds ---------------------------------------------------------------------------------------

    def commit_round(
        self, run_id: str, record: RoundRecord, events: Sequence[UEEvent], checkpoint: bytes | None
    ) -> None:
        """Store one round, its UE events and (if given) the run's checkpoint in ONE transaction.

        The checkpoint replaces the previous one and is tagged with ``record.round`` and its SHA-256; the
        round row gets the digest of itself and its events. Re-committing a round that exists (resume
        overlap) replaces the round and all its events. On any error nothing of the round is stored.
        After the commit the run's ledger entry is updated.
        """
        bad = [e.ue for e in events if e.round != record.round]
        if bad:
            raise ValueError(f"UE events {bad} do not belong to round {record.round}")
        round_row: tuple[Any, ...] = (
            run_id,
            int(record.round),
            *(coerce(c, getattr(record, c.name)) for c in ROUND_COLUMNS),
            canonical_json(record.extra),
        )
        event_rows = [
            (run_id, int(e.round), int(e.ue), *(coerce(c, getattr(e, c.name)) for c in EVENT_COLUMNS))
            for e in events
        ]
        round_row += (integrity.round_digest(round_row, event_rows),)
        try:
            with self._transaction() as conn:
                conn.execute(
                    "DELETE FROM ue_events WHERE run_id = ? AND round = ?", (run_id, int(record.round))
                )
                self._insert_round(conn, round_row)
                self._insert_events(conn, event_rows)
                if checkpoint is not None:
                    self._insert_checkpoint(conn, run_id, int(record.round), checkpoint)
                entry = integrity.ledger_entry(conn, run_id)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"cannot store round {record.round} of run {run_id!r}: {exc}") from exc
        if entry is not None:  # after the commit: the ledger never counts a round the database lacks
            ledger.write_entry(self.study_dir, entry)

    @staticmethod
    def _insert_round(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        cols = ", ".join(TABLE_COLUMNS["rounds"])
        marks = ", ".join("?" * len(row))
        conn.execute(f"INSERT OR REPLACE INTO rounds ({cols}) VALUES ({marks})", row)

    @staticmethod
    def _insert_events(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cols = ", ".join(TABLE_COLUMNS["ue_events"])
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO ue_events ({cols}) VALUES ({marks})", rows)

    @staticmethod
    def _insert_checkpoint(conn: sqlite3.Connection, run_id: str, round: int, blob: bytes) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints (run_id, round, blob, sha256) VALUES (?, ?, ?, ?)",
            (run_id, round, blob, integrity.blob_sha256(blob)),
        )

    def last_checkpoint(self, run_id: str) -> tuple[int, bytes] | None:
        """``(round, blob)`` of the run's checkpoint, or ``None`` if it has none.

        Raises :class:`DamagedStudyError` (naming the run, the round and the restart command) if the
        blob no longer matches the SHA-256 stored with it.
        """
        row = self._conn.execute(
            "SELECT c.round, c.blob, c.sha256, r.method, r.seed FROM checkpoints c "
            "JOIN runs r ON r.run_id = c.run_id WHERE c.run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        blob = bytes(row[1])
        if integrity.blob_sha256(blob) != row[2]:
            damage = Damage(
                run_id, str(row[3]), int(row[4]), "checkpoint", integrity.checkpoint_damage_text(int(row[0]))
            )
            raise DamagedStudyError(self.study_dir, [damage])
        return int(row[0]), blob

    def delete_rounds_after(self, run_id: str, round: int) -> None:
        """Delete rounds and UE events after ``round`` and a checkpoint taken after it (one transaction).

        The run's ledger entry is lowered first, so a crash in between never makes it exceed the database.
        """
        entry = integrity.ledger_entry(self._conn, run_id, up_to=round)
        if entry is not None:
            ledger.write_entry(self.study_dir, entry, durable=True)
        with self._transaction() as conn:
            for table in ("ue_events", "rounds", "checkpoints"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND round > ?", (run_id, int(round)))

    # -- attack results -------------------------------------------------------------------------------

    def commit_attack(self, run_id: str, record: attack_rows.LeakageRecord) -> None:
        """Store the run's attack result (replacing one stored before) in one transaction, with its
        digest; then update the run's ledger entry."""
        row = attack_rows.record_row(run_id, record)
        try:
            with self._transaction() as conn:
                attack_rows.insert_attack(conn, row)
                entry = integrity.ledger_entry(conn, run_id)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"cannot store the attack result of run {run_id!r}: {exc}") from exc
        if entry is not None:
            ledger.write_entry(self.study_dir, entry)

    def attacked_runs(self) -> set[str]:
        """Run ids that have an attack result stored."""
        return attack_rows.attacked_runs(self._conn)

    def attacks(self) -> pd.DataFrame:
        """One row per attacked run (see :func:`fedwave.report.attacks.read_attacks`)."""
        return attack_rows.read_attacks(self._conn)

    def reset_run(self, run_id: str) -> None:
        """Forget everything a run stored (rounds, UE events, checkpoint, attack result, ledger entry,
        error, times) and set it ``pending``, so the next study run computes it from round 0. A run the
        database lost entirely only loses its ledger entry."""
        ledger.remove_entry(self.study_dir, run_id)
        with self._transaction() as conn:
            for table in ("ue_events", "rounds", "checkpoints", "attacks"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            conn.execute(
                "UPDATE runs SET status = 'pending', error = NULL, started = NULL, finished = NULL "
                "WHERE run_id = ?",
                (run_id,),
            )

    # -- integrity ------------------------------------------------------------------------------------

    def damage(self) -> list[Damage]:
        """Every finding of the integrity checks: rounds lost (by the ledger), rounds whose values no
        longer match their digest, checkpoints that no longer match their SHA-256 (empty if sound)."""
        entries = ledger.read_entries(self.study_dir)
        self._conn.execute("BEGIN")
        try:
            return integrity.find_damage(self._conn, entries)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.db_path} cannot be read to check it: {exc}") from exc
        finally:
            self._conn.execute("COMMIT")

    def check(self) -> None:
        """Raise :class:`DamagedStudyError` naming every damaged run and round if :meth:`damage` finds any."""
        found = self.damage()
        if found:
            raise DamagedStudyError(self.study_dir, found)

    # -- reading --------------------------------------------------------------------------------------

    def runs(self) -> pd.DataFrame:
        """One row per run: run_id, study, method, seed, status, error, started, finished, config, varied."""
        return frames.read_runs(self._conn)

    def rounds(self, run_id: str | None = None) -> pd.DataFrame:
        """Rounds (all runs or one): run_id, method, seed, RoundRecord fields, extra_*, cum_bytes_up."""
        return frames.read_rounds(self._conn, run_id)

    def ue_events(self, run_id: str | None = None, round: int | None = None) -> pd.DataFrame:
        """UE events: run_id, method, seed, then the UEEvent fields; optionally one run and/or round."""
        return frames.read_ue_events(self._conn, run_id, round)

    def round_records(self, run_id: str) -> list[RoundRecord]:
        """The run's stored rounds as records (exactly as committed; NaN and ``None`` preserved)."""
        return frames.read_round_records(self._conn, run_id)

    def event_records(self, run_id: str, round: int | None = None) -> list[UEEvent]:
        """The run's stored UE events as records, optionally of one round."""
        return frames.read_event_records(self._conn, run_id, round)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
