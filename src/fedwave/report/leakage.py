"""Leakage columns of a study's tables: per run and per method, from the stored attack results.

Definitions (per run: one attack of ``attack.trials`` batches, see :mod:`fedwave.report.attacks`):

* PSNR median (dB): the run's median PSNR over its attacked samples; per method, the median of its runs'
  medians (NaN runs skipped). SSIM median likewise.
* label accuracy: the run's fraction of correctly recovered labels; per method, the mean over its runs.
* attack wall (s): host wall-clock seconds of the run's attack (all trials); per method, the mean.
* attacked: how many of the method's runs have a measured (not "not applicable") attack result.

The columns appear only in studies with attack results.
"""

from __future__ import annotations

import math

import pandas as pd

from fedwave.report.study import Study

#: Per-run leakage columns (besides run_id, method, seed).
RUN_COLUMNS = (
    "attack",
    "status",
    "psnr_median",
    "psnr_best",
    "ssim_median",
    "label_accuracy",
    "attack_wall_s",
    "uplink_bytes_median",
    "model_rounds",
    "error",
)
#: Per-method leakage columns added to the summary table.
METHOD_COLUMNS = ("psnr_median", "ssim_median", "label_accuracy", "attack_wall_s", "attacked")


def has_leakage(study: Study) -> bool:
    """Whether the study holds any attack result."""
    return not study.attacks.empty


def per_run(study: Study) -> pd.DataFrame:
    """One row per attacked run: run_id, method, seed and :data:`RUN_COLUMNS` (NaN when not applicable)."""
    a = study.attacks.rename(columns={"wall_s": "attack_wall_s"})
    return a[["run_id", "method", "seed", *RUN_COLUMNS]].reset_index(drop=True)


def per_method(study: Study, methods: list[str]) -> pd.DataFrame:
    """One row per method of ``methods`` (in that order) with :data:`METHOD_COLUMNS`; NaN (and 0
    attacked) for a method without attack results."""
    runs = per_run(study)
    rows = []
    for method in methods:
        g = runs[runs["method"] == method]
        rows.append(
            {
                "method": method,
                "psnr_median": float(g["psnr_median"].median()) if len(g) else math.nan,
                "ssim_median": float(g["ssim_median"].median()) if len(g) else math.nan,
                "label_accuracy": float(g["label_accuracy"].mean()) if len(g) else math.nan,
                "attack_wall_s": float(g["attack_wall_s"].mean()) if len(g) else math.nan,
                "attacked": int((g["status"] == "done").sum()),
            }
        )
    return pd.DataFrame(rows, columns=["method", *METHOD_COLUMNS])


def add_method_columns(summary: pd.DataFrame, study: Study) -> pd.DataFrame:
    """``summary`` (one row per method) with the leakage columns appended, if the study has any; the
    attacks and models used are noted in ``attrs["leakage_note"]``."""
    if not has_leakage(study):
        return summary
    extra = per_method(study, [str(m) for m in summary["method"]])
    out = summary.merge(extra, on="method", how="left", validate="one_to_one")
    out.attrs = dict(summary.attrs)
    out.attrs["leakage_note"] = leakage_note(study)
    return out


def leakage_note(study: Study) -> str:
    """Which attack(s), on which model(s), how many samples per run: ``leakage: dlg on the untrained
    model, 4 samples per run``."""
    a = study.attacks
    names = ", ".join(sorted(set(a["attack"])))
    rounds = sorted({int(r) for r in a["model_rounds"].dropna()})
    if rounds == [0]:
        model = "the untrained model"
    else:
        model = "the model after " + ", ".join(map(str, rounds)) + " rounds" if rounds else "no model"
    samples = sorted({int(s) for s in a.loc[a["status"] == "done", "samples"]})
    per = f", {'/'.join(map(str, samples))} samples per run" if samples else ""
    return f"leakage: {names} on {model}{per}"


def _num(x: float, fmt: str) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def display_columns(summary: pd.DataFrame) -> pd.DataFrame:
    """The leakage columns of a summary table as strings for people (empty frame if it has none)."""
    out = pd.DataFrame(index=summary.index)
    if "psnr_median" not in summary.columns:
        return out
    out["PSNR median (dB)"] = summary["psnr_median"].map(lambda x: _num(x, ".1f"))
    out["SSIM median"] = summary["ssim_median"].map(lambda x: _num(x, ".3f"))
    out["label acc."] = summary["label_accuracy"].map(lambda x: _num(x, ".2f"))
    out["attack wall (s)"] = summary["attack_wall_s"].map(lambda x: _num(x, ".1f"))
    out["attacked"] = [f"{int(a)}/{int(n)}" for a, n in zip(summary["attacked"], summary["seeds"])]
    return out
