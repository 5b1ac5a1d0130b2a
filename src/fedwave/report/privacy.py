"""Privacy in a study: each run's final epsilon, the table's epsilon column, the privacy-utility figure.

* A run's epsilon is the ``epsilon`` of its last round (at the run's ``dp.delta``): the accountant's
  epsilon after every round it ran. ``inf`` when a round released data without noise (z = 0, or no
  clipping). Runs without DP have none (NaN); runs with the users.md local noise (``local_privacy``) are
  labelled "unaccounted" (an absolute noise scale has no epsilon).
* :func:`privacy_columns` adds to the study table, per method, the epsilon over its seeds (mean, min,
  max), the delta and the privacy kind; :func:`epsilon_text` renders it.
* :func:`fig_privacy_utility`: final accuracy against final epsilon, one point per run (method and
  seed), whenever the study varies a ``dp`` key (:func:`varies_dp`). Epsilon is on a log axis; runs
  with epsilon = inf (or no DP) sit in a separate column at the right labelled "inf".
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedwave.report.study import Study

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

_LOCAL_KEYS = ("gradient_noise", "input_noise", "per_example_clipping")


def privacy_kind(config: dict[str, Any]) -> str:
    """``dp`` (accounted), ``unaccounted`` (users.md local noise only) or ``none``, from a run's config."""
    if (config.get("dp") or {}).get("level", "off") != "off":
        return "dp"
    local = config.get("local_privacy") or {}
    return "unaccounted" if any(float(local.get(k, 0) or 0) > 0 for k in _LOCAL_KEYS) else "none"


def run_epsilons(study: Study) -> pd.DataFrame:
    """Per run: run_id, method, seed, privacy (kind), delta, epsilon (last round; NaN without DP),
    final_accuracy (last evaluated round)."""
    rows = []
    by_run = {str(k): g.sort_values("round") for k, g in study.rounds.groupby("run_id", sort=False)}
    for run in study.runs.itertuples(index=False):
        r = by_run.get(str(run.run_id))
        kind = privacy_kind(run.config)
        eps = math.nan
        acc = math.nan
        if r is not None and len(r):
            if kind == "dp":
                eps = float(r["epsilon"].iloc[-1])
            evaluated = r["accuracy"].dropna()
            acc = float(evaluated.iloc[-1]) if len(evaluated) else math.nan
        delta = float((run.config.get("dp") or {}).get("delta", math.nan)) if kind == "dp" else math.nan
        rows.append(
            {
                "run_id": run.run_id,
                "method": run.method,
                "seed": int(run.seed),
                "privacy": kind,
                "delta": delta,
                "epsilon": eps,
                "final_accuracy": acc,
            }
        )
    cols = ["run_id", "method", "seed", "privacy", "delta", "epsilon", "final_accuracy"]
    return pd.DataFrame(rows, columns=cols)


def has_privacy(study: Study) -> bool:
    """Whether any run of the study uses DP or the unaccounted local noise."""
    return bool((run_epsilons(study)["privacy"] != "none").any())


def privacy_columns(study: Study) -> pd.DataFrame:
    """Per method: privacy kind, delta and epsilon mean / min / max over its seeds (index: method)."""
    runs = run_epsilons(study)
    rows = []
    for method, g in runs.groupby("method", sort=True):
        eps = g["epsilon"].dropna()
        rows.append(
            {
                "method": method,
                "privacy": str(g["privacy"].iloc[0]),
                "delta": float(g["delta"].iloc[0]),
                "epsilon_mean": float(eps.mean()) if len(eps) else math.nan,
                "epsilon_min": float(eps.min()) if len(eps) else math.nan,
                "epsilon_max": float(eps.max()) if len(eps) else math.nan,
            }
        )
    return pd.DataFrame(
        rows, columns=["method", "privacy", "delta", "epsilon_mean", "epsilon_min", "epsilon_max"]
    )


def _eps(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"


def epsilon_text(kind: str, lo: float, hi: float, delta: float) -> str:
    """``"2.31 (δ 1e-05)"``, a range over seeds ``"2.2–2.5 (δ 1e-05)"``, ``unaccounted`` or ``—``."""
    if kind == "unaccounted":
        return "unaccounted"
    if kind != "dp" or math.isnan(lo):
        return "—"
    value = _eps(lo) if lo == hi or _eps(lo) == _eps(hi) else f"{_eps(lo)}–{_eps(hi)}"
    return f"{value} (δ {delta:g})"


def varies_dp(study: Study) -> bool:
    """Whether the study varies a ``dp`` key (``--vary dp.noise_multiplier=...`` and the like)."""
    vary = (study.spec or {}).get("vary") or {}
    return any(str(k) == "dp" or str(k).startswith("dp.") for k in vary)


def fig_privacy_utility(study: Study) -> Figure:
    """Final test accuracy against final epsilon: one point per run, coloured by method.

    The method's mean over seeds is a larger open marker. Epsilon is on a log axis; runs with
    epsilon = inf (z = 0, no clipping) or without DP are drawn in a column right of a break, labelled
    "inf".
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from fedwave.report import style
    from fedwave.report.plots import _legend

    runs = run_epsilons(study).dropna(subset=["final_accuracy"])
    runs = runs.assign(inf=~np.isfinite(runs["epsilon"].to_numpy(dtype=float)))
    colors = style.method_colors(study.methods)
    with style.style():
        fig = Figure(figsize=style.WIDE, layout="constrained")
        ax = fig.add_subplot()
        if runs.empty:
            ax.text(0.5, 0.5, "no runs with an accuracy recorded", ha="center", va="center")
            ax.set_axis_off()
            return fig
        finite = runs.loc[~runs["inf"], "epsilon"].to_numpy(dtype=float)
        positive = finite[finite > 0]
        logx = len(positive) > 0
        if logx:
            lo, hi = float(positive.min()), float(positive.max())
            span = max(math.log10(hi / lo), 0.5)
            inf_x = hi * 10 ** (0.25 * span)
            zero_x = lo / 10 ** (0.25 * span)
        else:
            inf_x, zero_x = 1.0, 0.0

        def xpos(e: float) -> float:
            if not math.isfinite(e):
                return inf_x
            return zero_x if logx and e <= 0 else e

        for method, g in runs.groupby("method", sort=True):
            color = colors[str(method)]
            xs = [xpos(e) for e in g["epsilon"].to_numpy(dtype=float)]
            ys = g["final_accuracy"].to_numpy(dtype=float)
            ax.plot(xs, ys, "o", color=color, ms=6, alpha=0.85, label=f"{method} (n={len(g)})")
            mean_x = inf_x if g["inf"].all() else (xpos(float(np.mean(xs))) if not g["inf"].any() else None)
            if mean_x is not None and len(g) > 1:
                ax.plot(
                    [mean_x], [float(np.mean(ys))], "D", color=color, mfc="none", ms=10, mew=1.5, label="_m"
                )
        if logx:
            ax.set_xscale("log")
            ax.axvline(hi * 10 ** (0.12 * span), color="#999999", ls=":", lw=1)
            ticks = _ticks_125(lo / 10 ** (0.1 * span), hi * 10 ** (0.05 * span))
            labels = [f"{t:g}" for t in ticks]
            if runs["inf"].any():
                ticks.append(inf_x)
                labels.append("inf")
            ax.set_xticks(ticks, labels)
            ax.set_xlim(
                zero_x / 1.5 if (finite <= 0).any() else lo / 10 ** (0.1 * span), inf_x * 10 ** (0.1 * span)
            )
        else:
            ax.set_xticks([inf_x], ["inf"])
        ax.set_ylim(0, 1.03)  # accuracies; the top points stay whole
        ax.set_xlabel("epsilon after the run (at the run's delta; log scale)")
        ax.set_ylabel("final test accuracy")
        ax.set_title("Privacy vs utility: final accuracy against epsilon")
        handles = ax.get_legend_handles_labels()[0]
        handles.append(
            Line2D(
                [],
                [],
                color=style.KEY_COLOR,
                ls="none",
                marker="D",
                mfc="none",
                ms=8,
                label="mean over seeds",
            )
        )
        _legend(fig, handles, title="method (one point per seed)")
        return fig


def _ticks_125(lo: float, hi: float) -> list[float]:
    """1-2-5 steps between ``lo`` and ``hi`` (> 0); only powers of ten when there would be more than 8."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if k1 - k0 <= 3 else (1,)
    return [m * 10.0**k for k in range(k0, k1 + 1) for m in steps if lo <= m * 10.0**k <= hi]


def plot_privacy_utility(study: Study, out_dir: str | os.PathLike[str]) -> Any:
    """Write ``privacy_utility.png/.svg`` (see :func:`fig_privacy_utility`); return the two paths."""
    from fedwave.report.plots import save_figure

    return save_figure(fig_privacy_utility(study), out_dir, "privacy_utility")
