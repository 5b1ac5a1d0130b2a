"""Summary tables of a study: per method (over seeds) and per run; text and CSV output.

Definitions (units: simulated seconds, bytes, joules):

* final accuracy: test accuracy of a run's last evaluated round (rounds with NaN accuracy are skipped);
  mean and sample standard deviation (``ddof=1``, NaN for one seed) over the method's seeds.
* time to target: ``t_end`` (simulated s since the run started) of the first round whose accuracy is
  ``>= target``; the mean is over the seeds that reach the target, ``reached`` counts them.
* speed-up: baseline time to target / method time to target (both means); NaN when either never
  reaches the target or there is no baseline.
* uplink bytes, energy, simulated time, rounds: per-run totals, averaged over seeds.
* epsilon (only in studies with DP or the users.md local noise): each run's epsilon after its last
  round at the run's delta; mean, min and max over the method's seeds; "unaccounted" for local noise
  (see :mod:`fedwave.report.privacy`).
* leakage (studies with attack results): see :mod:`fedwave.report.leakage`.
"""

from __future__ import annotations

import math
import os
import re
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from fedwave.report import leakage
from fedwave.report.privacy import epsilon_text, has_privacy, privacy_columns
from fedwave.report.study import Study

#: Pattern of a baseline label: the codec is exactly ``fp32`` (``codec=fp32`` not followed by more spec).
_FP32 = re.compile(r"codec=fp32(?![\w:.(])")

#: Default target: this fraction of the best final mean accuracy, rounded down to :data:`TARGET_STEP`.
TARGET_FRACTION = 0.9
TARGET_STEP = 0.01


def default_target(study: Study) -> float:
    """``TARGET_FRACTION`` x the best method's mean final accuracy, floored to a multiple of 0.01.

    NaN when no run has an evaluated round.
    """
    finals = per_run(study)
    if finals.empty or finals["final_accuracy"].isna().all():
        return math.nan
    best = finals.groupby("method")["final_accuracy"].mean().max()
    return math.floor(TARGET_FRACTION * best / TARGET_STEP + 1e-9) * TARGET_STEP


def _time_to_target(rounds: pd.DataFrame, target: float) -> float:
    if math.isnan(target):
        return math.nan
    hit = rounds.loc[rounds["accuracy"] >= target, "t_end"]
    return float(hit.iloc[0]) if len(hit) else math.nan


def per_run(study: Study, target_accuracy: float = math.nan) -> pd.DataFrame:
    """One row per run: run_id, method, seed, status, rounds, final_accuracy, time_to_target_s,
    sim_time_s, bytes_up (total), energy_j (total), error."""
    rows = []
    by_run = {str(k): g.sort_values("round") for k, g in study.rounds.groupby("run_id", sort=False)}
    empty = study.rounds.iloc[0:0]
    for run in study.runs.itertuples(index=False):
        r = by_run.get(str(run.run_id), empty)
        evaluated = r["accuracy"].dropna()
        rows.append(
            {
                "run_id": run.run_id,
                "method": run.method,
                "seed": int(run.seed),
                "status": run.status,
                "rounds": len(r),
                "final_accuracy": float(evaluated.iloc[-1]) if len(evaluated) else math.nan,
                "time_to_target_s": _time_to_target(r, target_accuracy),
                "sim_time_s": float(r["t_end"].max()) if len(r) else math.nan,
                "bytes_up": int(r["bytes_up"].sum()),
                "energy_j": float(r["energy_j"].sum()),
                "error": run.error,
            }
        )
    cols = ["run_id", "method", "seed", "status", "rounds", "final_accuracy", "time_to_target_s"]
    cols += ["sim_time_s", "bytes_up", "energy_j", "error"]
    return pd.DataFrame(rows, columns=cols)


def find_baseline(methods: list[str], baseline: str | None = None) -> tuple[str | None, str]:
    """The baseline label among ``methods`` and a note saying how it was chosen (or why there is none).

    With ``baseline`` given it must be one of ``methods``; otherwise the single label containing
    ``codec=fp32`` is used.
    """
    if baseline is not None:
        if baseline in methods:
            return baseline, f"baseline: {baseline}"
        return None, f"baseline {baseline!r} is not a method of this study; speed-up not computed"
    matches = [m for m in methods if _FP32.search(m)]
    if len(matches) == 1:
        return matches[0], f"baseline: {matches[0]}"
    if not matches:
        return None, "no method has codec=fp32; choose a baseline (--baseline METHOD) to compute speed-ups"
    return None, f"several fp32 methods {matches}; choose one with --baseline METHOD"


def summary_table(
    study: Study, target_accuracy: float | None = None, baseline: str | None = None
) -> pd.DataFrame:
    """Per method, sorted by label: seeds, rounds, final accuracy mean/std, time to target, speed-up,
    uplink bytes, energy and simulated time (see the module docstring for definitions); in a study with
    attack results also the leakage columns of :mod:`fedwave.report.leakage`.

    ``target_accuracy`` defaults to :func:`default_target`; ``baseline`` to the ``codec=fp32`` method.
    ``df.attrs`` holds ``target_accuracy``, ``baseline`` and ``baseline_note``.
    """
    target = default_target(study) if target_accuracy is None else float(target_accuracy)
    runs = per_run(study, target)
    rows = []
    for method, g in runs.groupby("method", sort=True):
        ttt = g["time_to_target_s"].dropna()
        rows.append(
            {
                "method": method,
                "seeds": len(g),
                "rounds": float(g["rounds"].mean()),
                "final_acc_mean": float(g["final_accuracy"].mean()),
                "final_acc_std": float(g["final_accuracy"].std(ddof=1)) if len(g) > 1 else math.nan,
                "target_accuracy": target,
                "time_to_target_s": float(ttt.mean()) if len(ttt) else math.nan,
                "reached": len(ttt),
                "speedup": math.nan,
                "bytes_up_mean": float(g["bytes_up"].mean()),
                "energy_j_mean": float(g["energy_j"].mean()),
                "sim_time_s_mean": float(g["sim_time_s"].mean()),
            }
        )
    df = pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)
    if has_privacy(study):
        df = df.merge(privacy_columns(study), on="method", how="left")
    base, note = find_baseline(list(df["method"]), baseline)
    if base is not None:
        base_time = float(df.loc[df["method"] == base, "time_to_target_s"].iloc[0])
        df["speedup"] = base_time / df["time_to_target_s"]
    df.attrs.update(target_accuracy=target, baseline=base, baseline_note=note)
    return leakage.add_method_columns(df, study)


_SUMMARY_COLUMNS = [
    "method",
    "seeds",
    "rounds",
    "final_acc_mean",
    "final_acc_std",
    "target_accuracy",
    "time_to_target_s",
    "reached",
    "speedup",
    "bytes_up_mean",
    "energy_j_mean",
    "sim_time_s_mean",
]


def _num(x: float, fmt: str) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The summary table as strings for people: accuracy ``mean ± std``, MB (10^6 bytes), s, J."""
    out = pd.DataFrame({"method": df["method"].astype(str)})
    out["seeds"] = df["seeds"].map(str)
    out["rounds"] = df["rounds"].map(lambda x: _num(x, "g"))
    out["final accuracy"] = [
        f"{_num(m, '.3f')} ± {_num(s, '.3f')}" for m, s in zip(df["final_acc_mean"], df["final_acc_std"])
    ]
    out["time to target (s)"] = df["time_to_target_s"].map(lambda x: _num(x, ".1f"))
    out["reached"] = [f"{r}/{n}" for r, n in zip(df["reached"], df["seeds"])]
    out["speed-up"] = df["speedup"].map(lambda x: _num(x, ".2f") + ("×" if np.isfinite(x) else ""))
    out["uplink (MB)"] = (df["bytes_up_mean"] / 1e6).map(lambda x: _num(x, ".2f"))
    out["energy (J)"] = df["energy_j_mean"].map(lambda x: _num(x, ".1f"))
    out["sim. time (s)"] = df["sim_time_s_mean"].map(lambda x: _num(x, ".1f"))
    if "epsilon_mean" in df.columns:
        out["epsilon"] = [
            epsilon_text(k, lo, hi, d)
            for k, lo, hi, d in zip(df["privacy"], df["epsilon_min"], df["epsilon_max"], df["delta"])
        ]
    return out.join(leakage.display_columns(df))


def table_caption(df: pd.DataFrame) -> str:
    """A one-line caption: target accuracy and the baseline note from ``df.attrs``."""
    target = df.attrs.get("target_accuracy", math.nan)
    note = df.attrs.get("baseline_note", "")
    leak = df.attrs.get("leakage_note", "")
    return "; ".join(p for p in (f"target accuracy {_num(target, '.2f')}", note, leak) if p)


def format_table(df: pd.DataFrame, width: int = 240) -> str:
    """The summary table rendered as text for a terminal (a rich table; plain text if rich is missing)."""
    shown = display_frame(df) if "final_acc_mean" in df.columns else df.astype(str)
    caption = table_caption(df)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency; keep a plain fallback anyway
        return shown.to_string(index=False) + "\n" + caption + "\n"
    table = Table(caption=caption or None, show_lines=False)
    for i, col in enumerate(shown.columns):
        table.add_column(str(col), justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in shown.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    buf = StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(table)
    return buf.getvalue()


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` (numeric columns at full precision) as CSV to ``path``; return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    return out
