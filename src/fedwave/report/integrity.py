"""Integrity of a study database: per-round digests, checkpoint checksums and the ledger check.

* Each round row carries ``digest``: the SHA-256 of the round row and its UE events in canonical form
  (:func:`round_digest`). A value changed on disk after the commit no longer matches it.
* Each checkpoint carries ``sha256``, the SHA-256 of its blob (:func:`blob_sha256`).
* Each attack result carries ``digest``: the SHA-256 of its row, the grid PNG by its SHA-256
  (:func:`attack_digest`).
* The ledger (:mod:`fedwave.report.ledger`) counts each run's committed rounds and attack results outside
  the database, so a database that lost committed rows (its ``-wal`` file deleted) is noticed.

:func:`find_damage` runs the checks and returns one :class:`~fedwave.report.errors.Damage` per finding;
nothing here changes the database.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from fedwave.report.errors import Damage
from fedwave.report.ledger import LedgerEntry
from fedwave.report.schema import ATTACK_COLUMNS, ROUND_DATA_COLUMNS, TABLE_COLUMNS

#: Rounds listed one by one in a message before the rest are counted.
_SHOWN = 8


def _canon(value: Any) -> Any:
    """A column value as SQLite gives it back: NaN is stored as NULL, the sign of zero is dropped."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value == 0.0:
            return 0.0
    return value


def round_digest(round_row: Sequence[Any], event_rows: Sequence[Sequence[Any]]) -> str:
    """SHA-256 (hex) of one round: its row (the values of ``ROUND_DATA_COLUMNS``, in that order) and its
    UE events (rows of ``ue_events``' columns), as compact JSON ``[round_row, events sorted by UE]``.

    Values are taken as SQLite stores them (NaN as null, -0.0 as 0.0), so the digest of the values
    committed equals the digest of the values read back.
    """
    events = sorted(([_canon(v) for v in row] for row in event_rows), key=lambda row: row[2])
    payload = [[_canon(v) for v in round_row], events]
    text = json.dumps(payload, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def blob_sha256(blob: bytes) -> str:
    """SHA-256 (hex) of a checkpoint blob."""
    return hashlib.sha256(blob).hexdigest()


def attack_digest(row: Sequence[Any]) -> str:
    """SHA-256 (hex) of one attack row: the values of ``ATTACK_COLUMNS`` but ``digest``, in that order,
    with the grid PNG replaced by its SHA-256, as compact JSON (values canonical as in
    :func:`round_digest`; an infinite PSNR is kept as ``Infinity``)."""
    values = [blob_sha256(bytes(v)) if isinstance(v, bytes | memoryview) else _canon(v) for v in row]
    text = json.dumps(values, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the database has table ``name`` (``attacks`` is missing in studies written before it)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def run_labels(conn: sqlite3.Connection) -> dict[str, tuple[str, int]]:
    """``run_id -> (method, seed)`` of every run in the database."""
    return {str(r[0]): (str(r[1]), int(r[2])) for r in conn.execute("SELECT run_id, method, seed FROM runs")}


def stored_digests(conn: sqlite3.Connection) -> list[tuple[str, int, str, str]]:
    """``(run_id, round, computed digest, stored digest)`` of every round, from one read of the tables.

    UE events whose round row is missing are returned with the stored digest ``"<no round row>"``.
    """
    events: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for row in conn.execute(f"SELECT {', '.join(TABLE_COLUMNS['ue_events'])} FROM ue_events"):
        events.setdefault((row[0], row[1]), []).append(row)
    out = []
    for row in conn.execute(f"SELECT {', '.join(ROUND_DATA_COLUMNS)}, digest FROM rounds"):
        key = (str(row[0]), int(row[1]))
        out.append((key[0], key[1], round_digest(row[:-1], events.pop(key, [])), str(row[-1])))
    out += [(str(run), int(rnd), "", "<no round row>") for run, rnd in events]
    return sorted(out)


def _rounds_text(rounds: list[int]) -> str:
    shown = ", ".join(str(r) for r in rounds[:_SHOWN])
    more = f" and {len(rounds) - _SHOWN} more" if len(rounds) > _SHOWN else ""
    return f"round{'s' if len(rounds) > 1 else ''} {shown}{more}"


def _who(labels: dict[str, tuple[str, int]], run_id: str) -> tuple[str, int | None]:
    return labels.get(run_id, ("method unknown: the run is missing", None))


def damaged_rounds(conn: sqlite3.Connection, labels: dict[str, tuple[str, int]]) -> list[Damage]:
    """Runs with rounds whose row or UE events no longer match the round's digest."""
    changed: dict[str, list[int]] = {}
    orphans: dict[str, list[int]] = {}
    for run_id, rnd, computed, stored in stored_digests(conn):
        if stored == "<no round row>":
            orphans.setdefault(run_id, []).append(rnd)
        elif computed != stored:
            changed.setdefault(run_id, []).append(rnd)
    out = []
    for run_id, rounds in changed.items():
        method, seed = _who(labels, run_id)
        text = (
            f"{_rounds_text(rounds)} no longer match{'es' if len(rounds) == 1 else ''} the digest "
            "taken at commit: the round's values or its UE events were changed on disk"
        )
        out.append(Damage(run_id, method, seed, "changed", text))
    for run_id, rounds in orphans.items():
        method, seed = _who(labels, run_id)
        out.append(
            Damage(run_id, method, seed, "changed", f"UE events of {_rounds_text(rounds)} have no round row")
        )
    return out


def damaged_checkpoints(conn: sqlite3.Connection, labels: dict[str, tuple[str, int]]) -> list[Damage]:
    """Runs whose checkpoint blob no longer matches its SHA-256."""
    out = []
    for run_id, rnd, blob, sha in conn.execute(
        "SELECT run_id, round, blob, sha256 FROM checkpoints ORDER BY run_id"
    ):
        if blob_sha256(bytes(blob)) != sha:
            method, seed = _who(labels, str(run_id))
            out.append(Damage(str(run_id), method, seed, "checkpoint", checkpoint_damage_text(int(rnd))))
    return out


def checkpoint_damage_text(rnd: int) -> str:
    """What a damaged checkpoint's message says."""
    return (
        f"the checkpoint taken after round {rnd} no longer matches its SHA-256: it was changed on disk, "
        "and resuming from it would give wrong results"
    )


def damaged_attacks(conn: sqlite3.Connection, labels: dict[str, tuple[str, int]]) -> list[Damage]:
    """Runs whose attack result (numbers, details or grid) no longer matches its digest."""
    if not has_table(conn, "attacks"):
        return []
    out = []
    for row in conn.execute(f"SELECT {', '.join(ATTACK_COLUMNS)} FROM attacks ORDER BY run_id"):
        if attack_digest(row[:-1]) != row[-1]:
            method, seed = _who(labels, str(row[0]))
            text = (
                "the attack result no longer matches the digest taken at commit: its leakage numbers, "
                "details or picture grid were changed on disk"
            )
            out.append(Damage(str(row[0]), method, seed, "changed", text))
    return out


def attack_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """``run_id -> number of stored attack results`` (0 or 1) for every run with one."""
    if not has_table(conn, "attacks"):
        return {}
    rows = conn.execute("SELECT run_id, count(*) FROM attacks GROUP BY run_id")
    return {str(r[0]): int(r[1]) for r in rows}


def round_counts(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """``run_id -> (number of stored rounds, last round)`` for every run with rounds."""
    rows = conn.execute("SELECT run_id, count(*), max(round) FROM rounds GROUP BY run_id")
    return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}


def lost_rows(
    conn: sqlite3.Connection, entries: Sequence[LedgerEntry], labels: dict[str, tuple[str, int]]
) -> list[Damage]:
    """Runs of which the ledger counts more committed rounds (or attack results) than the database
    holds."""
    counts, attacks = round_counts(conn), attack_counts(conn)
    out = []
    for e in entries:
        have = counts.get(e.run_id, (0, -1))[0]
        missing = "" if e.run_id in labels else " (the run itself is missing)"
        lost = "(was study.db-wal deleted or damaged?)"
        if have < e.rounds:
            text = (
                f"had {e.rounds} rounds committed (rounds 0-{e.last_round}), the database holds "
                f"{have}{missing}: committed rounds were lost {lost}"
            )
            out.append(Damage(e.run_id, e.method, e.seed, "lost", text))
        if attacks.get(e.run_id, 0) < e.attacks:
            text = f"had its attack result committed, the database holds none{missing}: it was lost {lost}"
            out.append(Damage(e.run_id, e.method, e.seed, "lost", text))
    return out


def find_damage(conn: sqlite3.Connection, entries: Sequence[LedgerEntry]) -> list[Damage]:
    """Every finding of the checks (lost or changed rounds, damaged checkpoints, lost or changed attack
    results), by run.

    Call it inside one read transaction so that the tables are read at one instant.
    """
    labels = run_labels(conn)
    found = lost_rows(conn, entries, labels) + damaged_rounds(conn, labels)
    found += damaged_checkpoints(conn, labels) + damaged_attacks(conn, labels)
    return sorted(found, key=lambda d: (d.method, -1 if d.seed is None else d.seed, d.run_id))


def ledger_entry(conn: sqlite3.Connection, run_id: str, up_to: int | None = None) -> LedgerEntry | None:
    """The run's ledger entry as the database now holds it (rounds ``<= up_to`` if given); ``None`` if
    the run is unknown."""
    run = conn.execute("SELECT method, seed FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if run is None:
        return None
    limit = "" if up_to is None else " AND round <= ?"
    params: tuple[Any, ...] = (run_id,) if up_to is None else (run_id, int(up_to))
    n, last = conn.execute(
        f"SELECT count(*), COALESCE(max(round), -1) FROM rounds WHERE run_id = ?{limit}", params
    ).fetchone()
    attacks = attack_counts(conn).get(run_id, 0)
    return LedgerEntry(run_id, str(run[0]), int(run[1]), int(n), int(last), attacks)
