"""Leakage of a study's runs in the store: one attack result per run (the ``attacks`` table).

After a run of a study finishes, ``fedwave compare --attack NAME`` attacks what the BS of that run's
configuration receives (:mod:`fedwave.fl.study`) and commits one :class:`LeakageRecord`: the attack, its
outcome, the leakage summary (median and best PSNR in dB, median SSIM, label accuracy), the attack's
host wall time (s), the median size of the attacked updates as received (bytes), the threat model, the
per-sample metrics and the picture grid (PNG). An attack that cannot apply is stored with status
``not applicable``, NaN numbers and its message. The row carries a digest
(:func:`~fedwave.report.integrity.attack_digest`) and is counted in the run's ledger entry, so a changed
or lost result is found by the same checks as a changed or lost round.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fedwave.report import integrity
from fedwave.report.schema import ATTACK_COLUMNS, ATTACK_STATUSES
from fedwave.report.specs import canonical_json

#: Columns of :func:`read_attacks` besides the stored ones.
_LEAD = ("method", "seed")
_JSON_COLUMNS = ("threat_model", "metrics", "diagnostics")


@dataclass(frozen=True)
class LeakageRecord:
    """One run's attack result as stored.

    Attributes:
        attack: the attack's name (``attack.name``).
        status: ``done``, or ``not applicable`` (the attack raised an AttackError: numbers are NaN).
        error: the attack's message when not applicable, else None.
        psnr_median, psnr_best: median and best PSNR over the attacked samples (dB; inf = exact).
        ssim_median: median SSIM; label_accuracy: fraction of correctly recovered labels.
        wall_s: host wall-clock seconds the attack took (all trials; not simulated time).
        uplink_bytes_median: median size of the attacked updates as the BS received them (bytes).
        trials, samples: attacked batches and samples.
        model_rounds: FL rounds the attacked model had been trained for (0 = untrained).
        threat_model: what the attacked user shared and how its update was protected.
        metrics: one dict per sample (trial, sample, label, predicted_label, label_correct, mse, psnr, ssim).
        diagnostics: how each trial's reconstruction was obtained.
        grid_png: the picture grid (true row over reconstructed row), or None when not applicable.
    """

    attack: str
    status: str
    error: str | None = None
    psnr_median: float = math.nan
    psnr_best: float = math.nan
    ssim_median: float = math.nan
    label_accuracy: float = math.nan
    wall_s: float = math.nan
    uplink_bytes_median: float = math.nan
    trials: int = 0
    samples: int = 0
    model_rounds: int | None = None
    threat_model: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: list[Any] = field(default_factory=list)
    grid_png: bytes | None = None

    def __post_init__(self) -> None:
        if self.status not in ATTACK_STATUSES:
            raise ValueError(f"status must be one of {ATTACK_STATUSES}, got {self.status!r}")


def _real(value: float) -> float | None:
    """A float as bound for SQLite: NaN as NULL (read back as NaN), infinities kept."""
    x = float(value)
    return None if math.isnan(x) else x


def record_row(run_id: str, rec: LeakageRecord) -> tuple[Any, ...]:
    """The ``attacks`` row of ``rec`` (values in :data:`ATTACK_COLUMNS` order, digest last)."""
    row: tuple[Any, ...] = (
        run_id,
        rec.attack,
        rec.status,
        rec.error,
        _real(rec.psnr_median),
        _real(rec.psnr_best),
        _real(rec.ssim_median),
        _real(rec.label_accuracy),
        _real(rec.wall_s),
        _real(rec.uplink_bytes_median),
        int(rec.trials),
        int(rec.samples),
        None if rec.model_rounds is None else int(rec.model_rounds),
        canonical_json(rec.threat_model),
        canonical_json(rec.metrics),
        canonical_json(rec.diagnostics),
        rec.grid_png,
    )
    return (*row, integrity.attack_digest(row))


def insert_attack(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    """Store (or replace) one attack row inside the caller's transaction."""
    marks = ", ".join("?" * len(ATTACK_COLUMNS))
    conn.execute(f"INSERT OR REPLACE INTO attacks ({', '.join(ATTACK_COLUMNS)}) VALUES ({marks})", row)


def attacked_runs(conn: sqlite3.Connection) -> set[str]:
    """Run ids with a stored attack result (empty for a study without the ``attacks`` table)."""
    return set(integrity.attack_counts(conn))


def empty_frame() -> pd.DataFrame:
    """The frame of :func:`read_attacks` for a study without attack results."""
    return pd.DataFrame(columns=[*ATTACK_COLUMNS[:1], *_LEAD, *ATTACK_COLUMNS[1:-1]])


def read_attacks(conn: sqlite3.Connection) -> pd.DataFrame:
    """One row per attacked run, sorted by method then seed: run_id, method, seed, the stored columns
    (NaN for NULL numbers; threat_model, metrics and diagnostics parsed; grid as bytes or None)."""
    if not integrity.has_table(conn, "attacks"):
        return empty_frame()
    cols = ", ".join(f"a.{c}" for c in ATTACK_COLUMNS[1:-1])
    rows = conn.execute(
        f"SELECT a.run_id, u.method, u.seed, {cols} FROM attacks a JOIN runs u ON u.run_id = a.run_id "
        "ORDER BY u.method, u.seed, a.run_id"
    ).fetchall()
    if not rows:
        return empty_frame()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(empty_frame().columns))
    numbers = ["psnr_median", "psnr_best", "ssim_median", "label_accuracy", "wall_s", "uplink_bytes_median"]
    counts = {"seed": "int64", "trials": "int64", "samples": "int64"}
    df = df.astype(counts | dict.fromkeys(numbers, "float64"))
    for col in _JSON_COLUMNS:
        df[col] = [json.loads(s) for s in df[col]]
    df["grid"] = [None if g is None else bytes(g) for g in df["grid"]]
    return df
