"""Read a study database into pandas DataFrames and back into records (shared by store and study).

Columns keep the records' units: simulated seconds, bytes, joules. NaN floats are stored as SQL NULL
(in an optional column as the text ``'NaN'``) and read back as NaN; ``epsilon`` of ``None`` reads back
as NaN in a DataFrame and ``None`` in a record.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

import pandas as pd

from fedwave.records import RoundRecord, UEEvent
from fedwave.report.schema import EVENT_COLUMNS, NAN_TEXT, ROUND_COLUMNS, Column

_DTYPES = {"int": "int64", "float": "float64", "float | None": "float64", "str": "str"}

RUN_COLUMNS = (
    "run_id",
    "study",
    "method",
    "seed",
    "status",
    "error",
    "started",
    "finished",
    "config",
    "varied",
)


def _where(run_id: str | None, round: int | None, alias: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if run_id is not None:
        clauses.append(f"{alias}.run_id = ?")
        params.append(run_id)
    if round is not None:
        clauses.append(f"{alias}.round = ?")
        params.append(int(round))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _typed(rows: list[Any], lead: list[tuple[str, str]], cols: tuple[Column, ...]) -> pd.DataFrame:
    names = [n for n, _ in lead] + [c.name for c in cols]
    df = pd.DataFrame([tuple(r) for r in rows], columns=names)
    dtypes = {n: t for n, t in lead} | {c.name: _DTYPES[c.py_type] for c in cols}
    return df.astype(dtypes)


def read_runs(conn: sqlite3.Connection) -> pd.DataFrame:
    """One row per run, sorted by method then seed; ``config`` and ``varied`` parsed into dicts."""
    rows = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY method, seed, run_id").fetchall()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(RUN_COLUMNS))
    df = df.astype({"seed": "int64"})
    df["config"] = [json.loads(s) for s in df["config"]]
    df["varied"] = [json.loads(s) for s in df["varied"]]
    return df


def read_rounds(conn: sqlite3.Connection, run_id: str | None = None) -> pd.DataFrame:
    """Rounds joined with their run's method and seed, plus ``cum_bytes_up`` (bytes) and ``cum_energy_j``
    (J, every UE's compute and radio energy), both cumulative per run.

    ``extra`` is flattened into ``extra_<key>`` float columns, as :meth:`RoundRecord.as_dict` does.
    """
    where, params = _where(run_id, None, "r")
    fields = ", ".join(f"r.{c.name}" for c in ROUND_COLUMNS)
    rows = conn.execute(
        f"SELECT r.run_id, u.method, u.seed, r.round, {fields}, r.extra "
        f"FROM rounds r JOIN runs u ON u.run_id = r.run_id{where} "
        "ORDER BY u.method, u.seed, r.run_id, r.round",
        params,
    ).fetchall()
    lead = [("run_id", "str"), ("method", "str"), ("seed", "int64"), ("round", "int64")]
    extras = [json.loads(r[-1]) for r in rows]
    df = _typed([r[:-1] for r in rows], lead, ROUND_COLUMNS)
    for key in sorted({k for e in extras for k in e}):
        df[f"extra_{key}"] = [float(e.get(key, math.nan)) for e in extras]
    df["cum_bytes_up"] = df.groupby("run_id", sort=False)["bytes_up"].cumsum().astype("int64")
    df["cum_energy_j"] = df.groupby("run_id", sort=False)["energy_j"].cumsum().astype("float64")
    return df


def read_ue_events(
    conn: sqlite3.Connection, run_id: str | None = None, round: int | None = None
) -> pd.DataFrame:
    """UE events joined with their run's method and seed, sorted by run, round and UE."""
    where, params = _where(run_id, round, "e")
    fields = ", ".join(f"e.{c.name}" for c in EVENT_COLUMNS)
    rows = conn.execute(
        f"SELECT e.run_id, u.method, u.seed, e.round, e.ue, {fields} "
        f"FROM ue_events e JOIN runs u ON u.run_id = e.run_id{where} "
        "ORDER BY u.method, u.seed, e.run_id, e.round, e.ue",
        params,
    ).fetchall()
    lead = [("run_id", "str"), ("method", "str"), ("seed", "int64"), ("round", "int64"), ("ue", "int64")]
    return _typed(rows, lead, EVENT_COLUMNS)


def _value(col: Column, value: Any) -> Any:
    """A stored column value as the record holds it (see :func:`fedwave.report.schema.coerce`)."""
    if (value is None and col.py_type == "float") or value == NAN_TEXT:
        return math.nan
    return value


def read_round_records(conn: sqlite3.Connection, run_id: str) -> list[RoundRecord]:
    """The stored rounds of one run as :class:`RoundRecord` objects, in round order."""
    names = ", ".join(c.name for c in ROUND_COLUMNS)
    rows = conn.execute(
        f"SELECT round, {names}, extra FROM rounds WHERE run_id = ? ORDER BY round", (run_id,)
    ).fetchall()
    out = []
    for row in rows:
        kwargs = {c.name: _value(c, v) for c, v in zip(ROUND_COLUMNS, row[1:-1])}
        out.append(RoundRecord(round=row[0], extra=json.loads(row[-1]), **kwargs))
    return out


def read_event_records(conn: sqlite3.Connection, run_id: str, round: int | None = None) -> list[UEEvent]:
    """The stored UE events of one run (optionally one round) as :class:`UEEvent` objects."""
    where, params = _where(run_id, round, "e")
    names = ", ".join(f"e.{c.name}" for c in EVENT_COLUMNS)
    rows = conn.execute(
        f"SELECT e.round, e.ue, {names} FROM ue_events e{where} ORDER BY e.round, e.ue", params
    ).fetchall()
    return [
        UEEvent(round=r[0], ue=r[1], **{c.name: _value(c, v) for c, v in zip(EVENT_COLUMNS, r[2:])})
        for r in rows
    ]
