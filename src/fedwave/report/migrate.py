"""Schema versions of a study database: checking one (:func:`check_database`) and upgrading a database
written by an older fedwave to :data:`~fedwave.report.schema.SCHEMA_VERSION`.

Version 1 stored no round digests and no checkpoint checksums. Upgrading adds both columns and fills
them from the values as they are now (a change made before the upgrade cannot be detected afterwards),
then records the runs in the ledger. The database part is one transaction: it happens entirely or not.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from fedwave.records import RoundRecord, UEEvent
from fedwave.report import ledger
from fedwave.report.errors import StoreError
from fedwave.report.integrity import blob_sha256, ledger_entry, stored_digests
from fedwave.report.schema import EVENT_COLUMNS, ROUND_COLUMNS, SCHEMA_VERSION, TABLE_COLUMNS

#: Schema versions :func:`upgrade` can bring up to date.
UPGRADABLE = (1,)


def add_record_columns(conn: sqlite3.Connection) -> list[str]:
    """Add the record fields a database lacks (fields added to the records since it was written), each
    with its dataclass default: e.g. ``rounds.time_queue`` 0.0 (the old split counted queueing as
    waiting), ``ue_events.behaviour`` 'honest'. Returns the ``table.column`` names added."""
    added = []
    for table, cls, columns in (
        ("rounds", RoundRecord, ROUND_COLUMNS),
        ("ue_events", UEEvent, EVENT_COLUMNS),
    ):
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for col in columns:
            if col.name in have:
                continue
            default = defaults[col.name]
            literal = (
                "NULL" if default is None else repr(default) if isinstance(default, str) else str(default)
            )
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {col.ddl} DEFAULT {literal}")
            added.append(f"{table}.{col.name}")
    return added


def upgrade_v1(conn: sqlite3.Connection) -> int:
    """Inside the caller's transaction: add the record columns introduced since, add and fill
    ``rounds.digest`` and ``checkpoints.sha256``, set ``user_version`` to 2. Returns the number of rounds
    digested."""
    add_record_columns(conn)
    conn.execute("ALTER TABLE rounds ADD COLUMN digest TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE checkpoints ADD COLUMN sha256 TEXT NOT NULL DEFAULT ''")
    digests = [(d, run, rnd) for run, rnd, d, stored in stored_digests(conn) if stored != "<no round row>"]
    conn.executemany("UPDATE rounds SET digest = ? WHERE run_id = ? AND round = ?", digests)
    blobs = conn.execute("SELECT run_id, blob FROM checkpoints").fetchall()
    conn.executemany(
        "UPDATE checkpoints SET sha256 = ? WHERE run_id = ?", [(blob_sha256(bytes(b)), r) for r, b in blobs]
    )
    conn.execute("PRAGMA user_version = 2")
    return len(digests)


def write_ledger(conn: sqlite3.Connection, study_dir: Path) -> None:
    """Record every run's stored rounds in the ledger (after an upgrade: the ledger starts there)."""
    for (run_id,) in conn.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall():
        entry = ledger_entry(conn, str(run_id))
        if entry is not None:
            ledger.write_entry(study_dir, entry)


def check_database(conn: sqlite3.Connection, db_path: Path) -> None:
    """Raise :class:`StoreError` unless ``conn`` holds a fedwave study database of this version."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{db_path} is not a readable SQLite database ({exc})") from exc
    missing = [t for t in TABLE_COLUMNS if t not in tables]
    if missing:
        raise StoreError(f"{db_path} is not a fedwave study database: tables {missing} are missing")
    if version in UPGRADABLE:
        raise StoreError(
            f"{db_path} has schema version {version}, written by an older fedwave (no round digests); "
            f"this fedwave reads version {SCHEMA_VERSION}. Upgrade it once with: "
            f"fedwave study upgrade {db_path.parent}"
        )
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{db_path} has schema version {version}, written by a newer fedwave; this fedwave reads "
            f"version {SCHEMA_VERSION}: upgrade fedwave to read it"
        )
    for table, expected in TABLE_COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        lacking = [c for c in expected if c not in have]
        if lacking:
            raise StoreError(f"{db_path}: table {table} lacks columns {lacking} (older fedwave?)")
