"""The SQLite schema of a study database (``study.db``), derived from the record dataclasses.

Every field of :class:`~fedwave.records.RoundRecord` and :class:`~fedwave.records.UEEvent` is a column
of its own (``extra`` is stored as JSON text), so a field added to a record shows up here without
editing SQL. Units follow the records: simulated seconds, bytes, joules, bit/s, dB.

Tables::

    studies     (name PK, created, spec JSON, versions JSON)
    runs        (run_id PK, study -> studies, method, seed, config JSON, varied JSON,
                 status pending|running|done|failed, error, started, finished)
    rounds      (run_id -> runs, round, <RoundRecord fields>, extra JSON, digest;  PK (run_id, round))
    ue_events   (run_id -> runs, round, ue, <UEEvent fields>;                      PK (run_id, round, ue))
    checkpoints (run_id PK -> runs, round, blob, sha256)
    attacks     (run_id PK -> runs, attack, status, error, leakage summary, JSON details, grid PNG, digest)

``rounds.digest`` is the SHA-256 of the round row and its UE events in canonical form,
``attacks.digest`` that of the attack row (its grid by the grid's SHA-256) and ``checkpoints.sha256`` the
SHA-256 of the blob (see :mod:`fedwave.report.integrity`), so a value changed on disk after it was
committed is detected. ``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`.

The ``attacks`` table (leakage of each run, :mod:`fedwave.report.attacks`) was added without a version
change: it is an extra table that older readers ignore, created when a writer opens a database that lacks
it, and a reader treats a database without it as a study without attack results.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from fedwave.records import RoundRecord, UEEvent

#: Stored in ``PRAGMA user_version``; bump when the layout changes incompatibly.
#: Version 1 had no ``rounds.digest`` and no ``checkpoints.sha256`` (see :mod:`fedwave.report.migrate`).
SCHEMA_VERSION = 2

#: Name of the database file inside a study directory.
DB_NAME = "study.db"

#: Allowed values of ``runs.status``.
RUN_STATUSES = ("pending", "running", "done", "failed")

_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "str": "TEXT", "float | None": "REAL"}


@dataclass(frozen=True)
class Column:
    """One record field as a database column: name, SQL type, Python type name, nullable."""

    name: str
    sql_type: str
    py_type: str
    nullable: bool

    @property
    def ddl(self) -> str:
        """The column's definition inside ``CREATE TABLE``."""
        return f"{self.name} {self.sql_type}" + ("" if self.nullable else " NOT NULL")


def _record_columns(cls: type, skip: tuple[str, ...]) -> tuple[Column, ...]:
    cols = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        type_name = str(f.type)
        if type_name not in _SQL_TYPES:
            raise TypeError(f"{cls.__name__}.{f.name}: no SQL column type for {type_name!r}")
        # NaN is stored as NULL by SQLite, so float columns accept NULL and read back as NaN.
        nullable = type_name != "int" and type_name != "str"
        cols.append(Column(f.name, _SQL_TYPES[type_name], type_name, nullable))
    return tuple(cols)


#: RoundRecord fields stored as columns (``round`` is part of the key, ``extra`` is JSON).
ROUND_COLUMNS = _record_columns(RoundRecord, skip=("round", "extra"))
#: UEEvent fields stored as columns (``round`` and ``ue`` are part of the key).
EVENT_COLUMNS = _record_columns(UEEvent, skip=("round", "ue"))


def _ddl() -> list[str]:
    round_cols = ",\n    ".join(c.ddl for c in ROUND_COLUMNS)
    event_cols = ",\n    ".join(c.ddl for c in EVENT_COLUMNS)
    statuses = ", ".join(f"'{s}'" for s in RUN_STATUSES)
    return [
        """CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    spec TEXT NOT NULL,
    versions TEXT NOT NULL
)""",
        f"""CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    study TEXT NOT NULL REFERENCES studies(name),
    method TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    varied TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({statuses})),
    error TEXT,
    started TEXT,
    finished TEXT
)""",
        f"""CREATE TABLE IF NOT EXISTS rounds (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    round INTEGER NOT NULL,
    {round_cols},
    extra TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (run_id, round)
)""",
        f"""CREATE TABLE IF NOT EXISTS ue_events (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    round INTEGER NOT NULL,
    ue INTEGER NOT NULL,
    {event_cols},
    PRIMARY KEY (run_id, round, ue)
)""",
        """CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    round INTEGER NOT NULL,
    blob BLOB NOT NULL,
    sha256 TEXT NOT NULL
)""",
    ]


#: Allowed values of ``attacks.status``: measured, or the attack could not apply (NaN values, an error).
ATTACK_STATUSES = ("done", "not applicable")

#: The ``attacks`` table: one row per attacked run (see :mod:`fedwave.report.attacks` for the meaning).
ATTACKS_DDL = f"""CREATE TABLE IF NOT EXISTS attacks (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    attack TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in ATTACK_STATUSES)})),
    error TEXT,
    psnr_median REAL,
    psnr_best REAL,
    ssim_median REAL,
    label_accuracy REAL,
    wall_s REAL,
    uplink_bytes_median REAL,
    trials INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    model_rounds INTEGER,
    threat_model TEXT NOT NULL,
    metrics TEXT NOT NULL,
    diagnostics TEXT NOT NULL,
    grid BLOB,
    digest TEXT NOT NULL
)"""

#: Columns of the ``attacks`` table; every one but ``digest`` is covered by the digest, in this order.
ATTACK_COLUMNS: tuple[str, ...] = (
    "run_id",
    "attack",
    "status",
    "error",
    "psnr_median",
    "psnr_best",
    "ssim_median",
    "label_accuracy",
    "wall_s",
    "uplink_bytes_median",
    "trials",
    "samples",
    "model_rounds",
    "threat_model",
    "metrics",
    "diagnostics",
    "grid",
    "digest",
)

#: ``CREATE TABLE IF NOT EXISTS`` statements for every table.
DDL: tuple[str, ...] = (*_ddl(), ATTACKS_DDL)

#: Columns each table must have (checked when a database is opened).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "studies": ("name", "created", "spec", "versions"),
    "runs": (
        "run_id",
        "study",
        "method",
        "seed",
        "config",
        "varied",
        "status",
        "error",
        "started",
        "finished",
    ),
    "rounds": ("run_id", "round", *(c.name for c in ROUND_COLUMNS), "extra", "digest"),
    "ue_events": ("run_id", "round", "ue", *(c.name for c in EVENT_COLUMNS)),
    "checkpoints": ("run_id", "round", "blob", "sha256"),
}

#: The columns of a round row covered by its digest (every column but ``digest``), in digest order.
ROUND_DATA_COLUMNS: tuple[str, ...] = TABLE_COLUMNS["rounds"][:-1]


#: How NaN is stored in an optional float column, where NULL already means ``None``.
NAN_TEXT = "NaN"


def coerce(col: Column, value: Any) -> Any:
    """Convert ``value`` (possibly a numpy scalar) to the Python value SQLite binds for ``col``.

    SQLite stores a NaN float as NULL. That is what NaN becomes in a plain float column (read back as
    NaN); in an optional one (``float | None``), where NULL means ``None``, NaN is stored as the text
    :data:`NAN_TEXT` so the two stay apart.
    """
    if value is None:
        return None
    if col.py_type == "int":
        return int(value)
    if col.py_type == "str":
        return str(value)
    number = float(value)
    if col.py_type == "float | None" and math.isnan(number):
        return NAN_TEXT
    return number
