"""Upgrading a study database written by an older fedwave to :data:`~fedwave.report.schema.SCHEMA_VERSION`.

Version 1 stored no round digests and no checkpoint checksums. Upgrading adds both columns and fills
them from the values as they are now (a change made before the upgrade cannot be detected afterwards),
then records the runs in the ledger. The database part is one transaction: it happens entirely or not.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fedwave.report import ledger
from fedwave.report.integrity import blob_sha256, ledger_entry, stored_digests

#: Schema versions :func:`upgrade` can bring up to date.
UPGRADABLE = (1,)


def upgrade_v1(conn: sqlite3.Connection) -> int:
    """Inside the caller's transaction: add and fill ``rounds.digest`` and ``checkpoints.sha256``,
    set ``user_version`` to 2. Returns the number of rounds digested."""
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
