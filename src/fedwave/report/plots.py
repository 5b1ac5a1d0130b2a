"""The report's figures. ``fig_*`` builds a matplotlib Figure; ``plot_*`` builds it and writes PNG + SVG.

Figures are made with :class:`matplotlib.figure.Figure` (Agg canvas, no pyplot state), styled by
:mod:`fedwave.report.style`. Units: simulated seconds, MB = 10^6 bytes, joules. Curves over seeds are
averaged as step functions on a common grid (:mod:`fedwave.report.curves`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from fedwave.report import style
from fedwave.report.curves import step_mean, step_value
from fedwave.report.study import Study

# boxplot(orientation=...) replaced vert= in matplotlib 3.10
_MPL_VERSION = tuple(int(p) for p in matplotlib.__version__.split(".")[:2])
_HORIZONTAL = {"orientation": "horizontal"} if _MPL_VERSION >= (3, 10) else {"vert": False}


class FigurePaths(NamedTuple):
    """The two files a ``plot_*`` function writes."""

    png: Path
    svg: Path


def save_figure(fig: Figure, out_dir: str | os.PathLike[str], name: str) -> FigurePaths:
    """Write ``fig`` as ``out_dir/name.png`` and ``out_dir/name.svg``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = FigurePaths(out / f"{name}.png", out / f"{name}.svg")
    with style.style():
        fig.savefig(paths.png, dpi=style.PNG_DPI)
        fig.savefig(paths.svg)
    return paths


def _new_figure(size: tuple[float, float] = style.WIDE) -> Figure:
    with style.style():
        return Figure(figsize=size, layout="constrained")


def _legend(fig: Figure, handles: list[Any] | None = None, title: str | None = None) -> None:
    """A figure legend right of the axes, or below them in columns when a label is long (a title's
    line breaks become "; " there)."""
    if handles is None:
        handles = [h for ax in fig.axes for h in ax.get_legend_handles_labels()[0]]
    labels = [str(h.get_label()) for h in handles]
    if max((len(s) for s in labels), default=0) <= style.LEGEND_RIGHT_MAX_CHARS:
        fig.legend(handles, labels, loc="outside right upper", title=title)
    else:
        ncols = 2 if len(labels) > 3 else 1
        flat = title.replace("\n", "; ") if title else None
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, title=flat)


def _plain_log_ticks(ax: Axes) -> None:
    """Log-axis tick labels as plain numbers (0.1, 1, 10, 100) rather than powers of ten."""
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def _no_data(fig: Figure, what: str) -> Figure:
    """Replace the figure's contents by one centred message."""
    fig.clear()
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


# -- accuracy curves ------------------------------------------------------------------------------------

AccuracyX = Literal["time", "bytes", "energy"]

#: x column and scale of each accuracy axis: simulated s, MB (10^6 bytes) up, J spent by all UEs.
_ACCURACY_X = {"time": ("t_end", 1.0), "bytes": ("cum_bytes_up", 1e-6), "energy": ("cum_energy_j", 1.0)}


def fig_accuracy(
    study: Study,
    x: AccuracyX = "time",
    band: str = "minmax",
    logx: bool = False,
    target: float | None = None,
) -> Figure:
    """Test accuracy against simulated time (s), cumulative uplink (MB) or cumulative energy of all UEs
    (J, compute and radio), one line per method.

    The line is the mean over seeds, the band their min–max (``band="minmax"``) or ± one sample std
    (``band="std"``), both on the common step grid of :func:`~fedwave.report.curves.step_mean`, and
    each method's line spans all its seeds, from the first round end of any seed to the last. It is
    solid where every seed has a value and thin and dotted where only some do (mostly after the
    shortest seed's end: the mean of the seeds still running); a dot on the line marks where each seed
    ends. ``logx`` puts x on a log scale; ``target`` draws a dashed horizontal line.
    """
    if x not in _ACCURACY_X:
        raise ValueError(f"x must be one of {', '.join(_ACCURACY_X)}, got {x!r}")
    with style.style():
        fig = _new_figure()
        ax = fig.add_subplot()
        rounds = study.rounds.dropna(subset=["accuracy"])
        colors = style.method_colors(study.methods)
        column, scale = _ACCURACY_X[x]
        some_seeds = False  # whether some method's line has a stretch covering only some seeds
        for method, g in rounds.groupby("method", sort=True):
            curves = [
                (r[column].to_numpy(dtype=float) * scale, r["accuracy"].to_numpy(dtype=float))
                for _, r in g.sort_values("round").groupby("run_id", sort=True)
            ]
            stats = step_mean(curves, band)
            if not len(stats.x):
                continue
            color = colors[str(method)]
            full = stats.count == stats.n
            # Solid where every seed has a value; thinner and dotted where only some do (before the
            # slowest seed's first round end, after the shortest seed's last). Each dotted stretch
            # shares its end points with the solid line it continues, so no step riser is lost.
            partial = ~full
            partial[:-1] |= ~full[1:]
            partial[1:] |= ~full[:-1]
            ax.step(
                stats.x,
                np.where(full, stats.mean, np.nan),
                where="post",
                color=color,
                label=f"{method} (n={stats.n})",
            )
            if (~full).any():
                some_seeds = True
                ax.step(
                    stats.x,
                    np.where(partial, stats.mean, np.nan),
                    where="post",
                    color=color,
                    lw=style.PARTIAL_LW,
                    ls=style.PARTIAL_LS,
                    label="_partial",
                )
            # a dot on the mean line where each seed ends
            ends_y = step_value(stats.x, stats.mean, stats.ends)
            ax.plot(stats.ends, ends_y, "o", color=color, ms=style.SEED_END_MS, label="_end")
            if stats.n > 1:
                ax.fill_between(
                    stats.x, stats.lo, stats.hi, step="post", color=color, alpha=style.BAND_ALPHA, lw=0
                )
        if not ax.lines:
            return _no_data(fig, "accuracy")
        # legend: the methods, then keys to the dotted stretches and the dots, then the target
        handles = ax.get_legend_handles_labels()[0]
        if some_seeds:
            handles.append(
                Line2D(
                    [],
                    [],
                    color=style.KEY_COLOR,
                    lw=style.PARTIAL_LW,
                    ls=style.PARTIAL_LS,
                    label="mean of the seeds left",
                )
            )
        handles.append(
            Line2D(
                [],
                [],
                color=style.KEY_COLOR,
                ls="none",
                marker="o",
                ms=style.SEED_END_MS,
                label="a seed's last round",
            )
        )
        if target is not None and math.isfinite(target):
            handles.append(ax.axhline(target, color="#444444", ls="--", lw=1, label=f"target {target:.2f}"))
        log = ", log scale" if logx else ""
        if x == "time":
            ax.set_xlabel("simulated time (s)" + log)
            ax.set_title("Test accuracy vs simulated time")
        elif x == "bytes":
            ax.set_xlabel("cumulative uplink (MB)" + log)
            ax.set_title("Test accuracy vs uplink bytes")
        else:
            ax.set_xlabel("cumulative energy of all UEs (J)" + log)
            ax.set_title("Test accuracy vs energy spent")
        if logx:
            ax.set_xscale("log")
            _plain_log_ticks(ax)
        else:
            ax.set_xlim(left=0)
        ax.set_ylabel("test accuracy")
        what = "min–max" if band == "minmax" else "± 1 std"
        _legend(fig, handles, title=f"method (mean over seeds)\nband: {what} over seeds")
        return fig


def plot_accuracy_vs_time(
    study: Study,
    out_dir: str | os.PathLike[str],
    band: str = "minmax",
    logx: bool = False,
    target: float | None = None,
) -> FigurePaths:
    """Write ``accuracy_vs_time.png/.svg`` (see :func:`fig_accuracy`); ``logx`` for a log time axis."""
    return _save_accuracy(study, out_dir, "time", band, logx, target)


def plot_accuracy_vs_bytes(
    study: Study,
    out_dir: str | os.PathLike[str],
    band: str = "minmax",
    logx: bool = False,
    target: float | None = None,
) -> FigurePaths:
    """Write ``accuracy_vs_bytes.png/.svg`` (see :func:`fig_accuracy`); ``logx`` for a log byte axis."""
    return _save_accuracy(study, out_dir, "bytes", band, logx, target)


def plot_accuracy_vs_energy(
    study: Study,
    out_dir: str | os.PathLike[str],
    band: str = "minmax",
    logx: bool = False,
    target: float | None = None,
) -> FigurePaths:
    """Write ``accuracy_vs_energy.png/.svg`` (see :func:`fig_accuracy`); ``logx`` for a log energy axis."""
    return _save_accuracy(study, out_dir, "energy", band, logx, target)


def _save_accuracy(
    study: Study, out_dir: str | os.PathLike[str], x: AccuracyX, band: str, logx: bool, target: float | None
) -> FigurePaths:
    return save_figure(fig_accuracy(study, x, band, logx=logx, target=target), out_dir, f"accuracy_vs_{x}")


def energy_axis_is_log(study: Study, ratio: float = 10.0) -> bool:
    """True when methods' total energy (J) differs by more than ``ratio`` (a log axis reads better)."""
    return _totals_spread(study, "energy_j", ratio)


def _totals_spread(study: Study, column: str, ratio: float) -> bool:
    totals = study.rounds.groupby("method")[column].sum() if not study.rounds.empty else None
    if totals is None or (totals <= 0).any() or len(totals) < 2:
        return False
    return bool(totals.max() / totals.min() > ratio)


# -- time split -----------------------------------------------------------------------------------------


def fig_time_split(study: Study, run_id: str | None = None) -> Figure:
    """Per-round time split (compute / uplink / downlink / waiting, simulated s) as stacked bars.

    With ``run_id``: one bar per round of that run. Without: one horizontal bar per method, the mean
    per round over all its rounds and seeds.
    """
    rounds = study.rounds if run_id is None else study.rounds[study.rounds["run_id"] == run_id]
    size = style.WIDE if run_id is not None else (style.WIDE[0], style.bar_height(rounds["method"].nunique()))
    with style.style():
        fig = _new_figure(size)
        ax = fig.add_subplot()
        if rounds.empty:
            return _no_data(fig, "rounds")
        if run_id is not None:
            x = rounds["round"].to_numpy()
            bottom = np.zeros(len(x))
            for col, color, label in style.TIME_PARTS:
                h = rounds[col].to_numpy(dtype=float)
                ax.bar(x, h, bottom=bottom, color=color, label=label, width=0.8)
                bottom += h
            ax.set_xlabel("round")
            ax.set_ylabel("time per round (simulated s)")
            ax.set_title(f"Time split per round: {run_id}")
            ax.grid(axis="x", visible=False)
        else:
            cols = [c for c, _, _ in style.TIME_PARTS]
            means = rounds.groupby("method", sort=True)[cols].mean()
            y = np.arange(len(means))
            left = np.zeros(len(means))
            for col, color, label in style.TIME_PARTS:
                w = means[col].to_numpy(dtype=float)
                ax.barh(y, w, left=left, color=color, label=label, height=0.6)
                left += w
            ax.set_yticks(y, [str(m) for m in means.index])
            ax.invert_yaxis()
            ax.set_xlim(left=0)
            ax.set_xlabel("mean time per round (simulated s)")
            ax.set_title("Time per round by phase (mean over rounds and seeds)")
            ax.grid(axis="y", visible=False)
        _legend(fig, title="phase")
        return fig


def plot_time_split(study: Study, out_dir: str | os.PathLike[str], run_id: str | None = None) -> FigurePaths:
    """Write ``time_split.png/.svg`` (see :func:`fig_time_split`)."""
    return save_figure(fig_time_split(study, run_id), out_dir, "time_split")


# -- UE timeline ----------------------------------------------------------------------------------------


def _phases(e: pd.DataFrame, t0: float) -> dict[str, list[tuple[float, float]]]:
    spans = {
        "download": (e["t_download_start"], e["t_download_end"]),
        "compute": (e["t_compute_start"], e["t_compute_end"]),
        "queue": (e["t_compute_end"], e["t_upload_start"]),
        "upload": (e["t_upload_start"], e["t_upload_end"]),
    }
    return {
        phase: [(float(a) - t0, float(b) - float(a)) for a, b in zip(start, end)]
        for phase, (start, end) in spans.items()
    }


def run_label(study: Study, run_id: str) -> str:
    """``"<method>, seed <seed>"`` for a run id (the id itself if the run is unknown)."""
    runs = study.runs
    row = runs[runs["run_id"] == run_id]
    if row.empty:
        return run_id
    return f"{row.iloc[0]['method']}, seed {int(row.iloc[0]['seed'])}"


def fig_ue_timeline(study: Study, run_id: str, round: int) -> Figure:
    """Gantt chart of one round of one run: a row per UE, coloured download / compute / queue / upload
    segments (simulated s since the round started) and a marker for UEs that did not arrive."""
    events = study.events(run_id, round).sort_values("ue")
    rec = study.rounds[(study.rounds["run_id"] == run_id) & (study.rounds["round"] == round)]
    n = len(events)
    height = min(style.TIMELINE_MAX_H, max(3.2, 1.6 + style.TIMELINE_ROW_IN * n))
    with style.style():
        fig = _new_figure((style.WIDE[0], height))
        ax = fig.add_subplot()
        if events.empty:
            return _no_data(fig, f"UE events for run {run_id} round {round}")
        t0 = float(rec["t_start"].iloc[0]) if len(rec) else float(events["t_download_start"].min())
        rows = np.arange(n)
        spans = _phases(events, t0)
        colors = {p: style.PHASE_COLORS[p] for p in spans}
        for phase, color in colors.items():
            for i, span in zip(rows, spans[phase]):
                if span[1] > 0:
                    ax.broken_barh([span], (i - 0.32, 0.64), facecolors=color)
        handles: list[Patch | Line2D] = [Patch(color=c, label=p) for p, c in colors.items()]
        close = float(rec["t_end"].iloc[0]) - t0 if len(rec) else math.nan
        last = float(events[["t_upload_end", "t_compute_end"]].max(axis=1).max()) - t0
        right = max(last, close) if math.isfinite(close) else last
        status_x = right * 1.04 + 1e-9  # outcome markers sit in a column right of every bar
        for status, (marker, color, label) in style.STATUS_MARKERS.items():
            mask = (events["status"] == status).to_numpy()
            if mask.any():
                (line,) = ax.plot(
                    np.full(int(mask.sum()), status_x),
                    rows[mask],
                    ls="none",
                    marker=marker,
                    ms=7,
                    color=color,
                    mfc="none" if marker == "o" else color,
                    label=label,
                )
                handles.append(line)
        top = -0.5
        if any(s in style.STATUS_MARKERS for s in events["status"]):
            top = -1.4  # a header row inside the axes for the outcome column
            ax.text(status_x, -0.95, "outcome", ha="center", va="center", fontsize=8.5, color="#444444")
        if math.isfinite(close):
            handles.append(ax.axvline(close, color="#222222", ls="--", lw=1.2, label="round closes"))
        step = max(1, math.ceil(n / 30))
        ax.set_yticks(rows[::step], [str(u) for u in events["ue"].to_numpy()[::step]])
        ax.set_ylim(n - 0.5, top)
        ax.set_xlim(0, right * 1.08 + 1e-9)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("time since round start (simulated s)")
        ax.set_ylabel("UE")
        ax.set_title(f"UE timeline: {run_label(study, run_id)}, round {round}")
        _legend(fig, handles)
        return fig


def plot_ue_timeline(study: Study, out_dir: str | os.PathLike[str], run_id: str, round: int) -> FigurePaths:
    """Write ``ue_timeline.png/.svg`` (see :func:`fig_ue_timeline`)."""
    return save_figure(fig_ue_timeline(study, run_id, round), out_dir, "ue_timeline")


# -- energy ---------------------------------------------------------------------------------------------


def fig_energy_per_ue(study: Study) -> Figure:
    """Energy per UE and method (J): left, mean per UE and round split into compute and radio;
    right, the spread of each UE's total over a run (box over all seeds' UEs)."""
    ev = study.ue_events
    methods = study.methods
    with style.style():
        fig = _new_figure((style.WIDE[0] + 1.5, style.bar_height(len(methods))))
        left_ax, right_ax = fig.subplots(1, 2, sharey=True)
        if ev.empty:
            return _no_data(fig, "UE events")
        y = np.arange(len(methods))
        cols = [c for c, _, _ in style.ENERGY_PARTS]
        means = ev.groupby("method")[cols].mean().reindex(methods)
        left = np.zeros(len(methods))
        for col, color, label in style.ENERGY_PARTS:
            w = means[col].to_numpy(dtype=float)
            left_ax.barh(y, w, left=left, color=color, label=label, height=0.6)
            left += w
        left_ax.set_yticks(y, methods)
        left_ax.invert_yaxis()
        left_ax.set_xlabel("mean energy per UE and round (J)")
        left_ax.set_title("Energy per UE-round")
        left_ax.grid(axis="y", visible=False)
        totals = ev.assign(energy=ev["energy_compute_j"] + ev["energy_radio_j"])
        per_ue = totals.groupby(["method", "run_id", "ue"])["energy"].sum()
        data = [per_ue.loc[m].to_numpy(dtype=float) if m in per_ue.index else np.empty(0) for m in methods]
        colors = style.method_colors(methods)
        box = right_ax.boxplot(
            data, positions=y, widths=0.55, patch_artist=True, manage_ticks=False, **_HORIZONTAL
        )
        for patch, m in zip(box["boxes"], methods):
            patch.set_facecolor(colors[m])
            patch.set_alpha(0.75)
        for median in box["medians"]:
            median.set_color("black")
        right_ax.set_xlabel("total energy per UE over a run (J)")
        right_ax.set_title("Spread over UEs and seeds")
        right_ax.set_yticks(y, methods)
        _legend(fig, list(left_ax.get_legend_handles_labels()[0]), title="energy")
        right_ax.grid(axis="y", visible=False)
        return fig


def plot_energy_per_ue(study: Study, out_dir: str | os.PathLike[str]) -> FigurePaths:
    """Write ``energy_per_ue.png/.svg`` (see :func:`fig_energy_per_ue`)."""
    return save_figure(fig_energy_per_ue(study), out_dir, "energy_per_ue")


# -- choices the report makes ---------------------------------------------------------------------------


def bytes_axis_is_log(study: Study, ratio: float = 10.0) -> bool:
    """True when methods' total uplink bytes differ by more than ``ratio`` (a log axis reads better)."""
    return _totals_spread(study, "bytes_up", ratio)


def time_axis_is_log(study: Study, ratio: float = 10.0) -> bool:
    """True when runs' last round ends (simulated s) differ by more than ``ratio``: on a linear axis the
    short runs would be squeezed against zero by the long ones, so a log axis reads better."""
    if study.rounds.empty:
        return False
    ends = study.rounds.groupby("run_id")["t_end"].max().dropna()
    if len(ends) < 2 or (ends <= 0).any():
        return False
    return bool(ends.max() / ends.min() > ratio)


def pick_timeline_round(study: Study) -> tuple[str, int] | None:
    """The run and round the report's UE timeline shows: the first run (by method, seed) with UE events
    and its round with the most UEs that did not arrive (earliest on ties); ``None`` without events."""
    events = study.ue_events
    if events.empty:
        return None
    run_id = str(events["run_id"].iloc[0])
    mine = events[events["run_id"] == run_id]
    missing = (mine["status"] != "arrived").groupby(mine["round"]).sum()
    return run_id, int(missing.idxmax())


def plot_all(
    study: Study, out_dir: str | os.PathLike[str], target: float | None = None
) -> dict[str, FigurePaths]:
    """Write every figure of the report into ``out_dir``; return name -> paths."""
    out = {
        "accuracy_vs_time": plot_accuracy_vs_time(
            study, out_dir, logx=time_axis_is_log(study), target=target
        ),
        "accuracy_vs_bytes": plot_accuracy_vs_bytes(
            study, out_dir, logx=bytes_axis_is_log(study), target=target
        ),
        "accuracy_vs_energy": plot_accuracy_vs_energy(
            study, out_dir, logx=energy_axis_is_log(study), target=target
        ),
        "time_split": plot_time_split(study, out_dir),
        "energy_per_ue": plot_energy_per_ue(study, out_dir),
    }
    chosen = pick_timeline_round(study)
    if chosen is not None:
        out["ue_timeline"] = plot_ue_timeline(study, out_dir, *chosen)
    from fedwave.report import privacy  # the privacy-utility figure, when the study varies a dp key

    if privacy.varies_dp(study):
        out["privacy_utility"] = privacy.plot_privacy_utility(study, out_dir)
    return out
