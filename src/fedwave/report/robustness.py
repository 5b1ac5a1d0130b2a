"""Robustness in a study: final accuracy against the share of malicious UEs, one line per defence.

Whenever a study varies an ``adversary`` key (:func:`varies_adversary`, e.g. ``--vary
adversary.fraction=0,0.1,0.2,0.3 --vary server.aggregator=mean,median``), :func:`robustness_table` gives
per grid cell (attacker share x the other varied keys) the final test accuracy over seeds, and
:func:`fig_robustness` draws it: x = the share of malicious UEs (``adversary.ues`` counted against
``fl.num_ues`` when the UEs are listed; 0 when ``adversary.attack`` is ``none``), y = final accuracy,
one line per value of the other varied keys (the aggregator, typically), a band from min to max over
seeds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedwave.report.study import Study

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

_SHARE_KEYS = ("adversary.fraction", "adversary.ues", "adversary")


def varies_adversary(study: Study) -> bool:
    """Whether the study varies an ``adversary`` key."""
    vary = (study.spec or {}).get("vary") or {}
    return any(str(k) == "adversary" or str(k).startswith("adversary.") for k in vary)


def attacker_share(config: dict[str, Any]) -> float:
    """The share of malicious UEs a run's config asks for (0 without an attack)."""
    adv = config.get("adversary") or {}
    if adv.get("attack", "none") == "none":
        return 0.0
    if adv.get("ues") is not None:
        n = int((config.get("fl") or {}).get("num_ues", 0) or 0)
        return len(adv["ues"]) / n if n else math.nan
    return float(adv.get("fraction", 0.0) or 0.0)


def _line_label(config: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for key in keys:
        value: Any = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        parts.append(f"{key}={value}")
    return ", ".join(parts) if parts else "all runs"


def robustness_table(study: Study) -> pd.DataFrame:
    """Per line and attacker share: final accuracy mean, min and max over seeds, and the seed count.

    Columns: ``line`` (the other varied keys, e.g. ``server.aggregator=median``), ``share``,
    ``accuracy_mean``, ``accuracy_min``, ``accuracy_max``, ``seeds``.
    """
    vary = [str(k) for k in ((study.spec or {}).get("vary") or {})]
    others = [k for k in vary if k not in _SHARE_KEYS and not k.startswith("adversary.")]
    final: dict[str, float] = {}
    for run_id, g in study.rounds.groupby("run_id", sort=False):
        acc = g.sort_values("round")["accuracy"].dropna()
        if len(acc):
            final[str(run_id)] = float(acc.iloc[-1])
    rows = []
    for run in study.runs.itertuples(index=False):
        if str(run.run_id) in final:
            cfg = dict(run.config)
            rows.append((_line_label(cfg, others), attacker_share(cfg), final[str(run.run_id)]))
    frame = pd.DataFrame(rows, columns=["line", "share", "accuracy"])
    cols = ["line", "share", "accuracy_mean", "accuracy_min", "accuracy_max", "seeds"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    out = (
        frame.groupby(["line", "share"], sort=True)["accuracy"]
        .agg(accuracy_mean="mean", accuracy_min="min", accuracy_max="max", seeds="count")
        .reset_index()
    )
    return out[cols]


def fig_robustness(study: Study) -> Figure:
    """Final test accuracy against the share of malicious UEs, one line per defence (mean over seeds,
    a min-max band when there are several)."""
    from matplotlib.figure import Figure

    from fedwave.report import style
    from fedwave.report.plots import _legend

    table = robustness_table(study)
    lines = list(dict.fromkeys(table["line"]))
    colors = style.method_colors(lines)
    with style.style():
        fig = Figure(figsize=style.WIDE, layout="constrained")
        ax = fig.add_subplot()
        if table.empty:
            ax.text(0.5, 0.5, "no runs with an accuracy recorded", ha="center", va="center")
            ax.set_axis_off()
            return fig
        for line in lines:
            g = table[table["line"] == line].sort_values("share")
            x = g["share"].to_numpy(dtype=float)
            color = colors[line]
            ax.plot(x, g["accuracy_mean"], "o-", color=color, label=line)
            if int(g["seeds"].max()) > 1:
                ax.fill_between(x, g["accuracy_min"], g["accuracy_max"], color=color, alpha=0.15, lw=0)
        shares = np.unique(table["share"].to_numpy(dtype=float))
        ax.set_xticks(shares, [f"{s:g}" for s in shares])
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("share of malicious UEs")
        ax.set_ylabel("final test accuracy")
        ax.set_title("Robustness: final accuracy against the share of attackers")
        _legend(fig, title="defence")
        return fig
