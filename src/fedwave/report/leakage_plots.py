"""The report's leakage figure: reconstruction PSNR against the size of the attacked update, per method.

One small point per run (method and seed) at (median size of its attacked updates as the BS received
them, in kB = 10^3 bytes; its median PSNR in dB) and one large marker per method at the median of its
runs' coordinates (the summary table's PSNR). An exact reconstruction (infinite PSNR) is drawn as a
triangle on a line above the finite values. Runs whose attack was not applicable have no point.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fedwave.report import leakage, style
from fedwave.report.plots import FigurePaths, _legend, _new_figure, _no_data, _plain_log_ticks, save_figure
from fedwave.report.study import Study

#: Marker sizes (points) of a run and of a method's median.
RUN_MS = 6.0
MEDIAN_MS = 13.0


class LeakagePoint(NamedTuple):
    """One plotted run or method median: x in kB, y in dB (inf: exact reconstruction)."""

    method: str
    kb: float
    psnr: float


def leakage_points(study: Study) -> tuple[list[LeakagePoint], list[LeakagePoint]]:
    """The figure's data: per measured run, and per method the median of its runs (``x`` and ``y``
    medians taken separately, NaN skipped)."""
    runs = leakage.per_run(study)
    runs = runs[runs["status"] == "done"]
    points = [
        LeakagePoint(str(r.method), float(r.uplink_bytes_median) / 1e3, float(r.psnr_median))
        for r in runs.itertuples(index=False)
    ]
    medians = []
    for method, g in runs.groupby("method", sort=True):
        kb = g["uplink_bytes_median"].to_numpy(dtype=float) / 1e3
        psnr = g["psnr_median"].to_numpy(dtype=float)
        medians.append(LeakagePoint(str(method), float(np.median(kb)), float(np.median(psnr))))
    return points, medians


def _key(marker: str, label: str, hollow: bool = False) -> Line2D:
    """A legend entry explaining a marker (grey, no line)."""
    if hollow:
        return Line2D([], [], color=style.KEY_COLOR, ls="none", marker=marker, mfc="none", mew=2.0,
                      ms=0.7 * MEDIAN_MS, label=label)  # fmt: skip
    return Line2D([], [], color=style.KEY_COLOR, ls="none", marker=marker, ms=RUN_MS, label=label)


def fig_leakage_vs_bytes(study: Study) -> Figure:
    """Median reconstruction PSNR (dB) against the attacked update's size (kB), see the module docstring."""
    points, medians = leakage_points(study)
    with style.style():
        fig = _new_figure()
        ax = fig.add_subplot()
        if not points:
            return _no_data(fig, "measured leakage")
        colors = style.method_colors(study.methods)
        finite = [p.psnr for p in points + medians if math.isfinite(p.psnr)]
        top = (max(finite) if finite else 60.0) + 8.0  # where exact reconstructions are drawn

        def y(p: LeakagePoint) -> float:
            return p.psnr if math.isfinite(p.psnr) else top

        for m in medians:  # hollow, under the seeds' points so that those stay visible
            marker = "D" if math.isfinite(m.psnr) else "^"
            color = colors[m.method]
            ax.plot(m.kb, y(m), marker, mfc="none", mec=color, mew=2.0, ms=MEDIAN_MS, label=m.method)
        for p in points:
            marker = "o" if math.isfinite(p.psnr) else "^"
            ax.plot(p.kb, y(p), marker, color=colors[p.method], ms=RUN_MS, alpha=0.8, zorder=3, label="_run")
        handles = ax.get_legend_handles_labels()[0]
        handles.append(_key("o", "a seed"))
        handles.append(_key("D", "median", hollow=True))
        if any(not math.isfinite(p.psnr) for p in points):
            ax.axhline(top, color="#999999", ls=":", lw=1)
            handles.append(_key("^", "exact (∞ dB)"))
        kbs = [p.kb for p in points]
        logx = min(kbs) > 0 and max(kbs) / min(kbs) > 10
        if logx:
            ax.set_xscale("log")
            _plain_log_ticks(ax)
        ax.margins(x=0.15, y=0.12)
        ax.set_xlabel("attacked update as received (kB)" + (", log scale" if logx else ""))
        ax.set_ylabel("reconstruction PSNR, median (dB)")
        ax.set_title("Leakage vs uplink bytes")
        _legend(fig, handles, title="method")
        return fig


def plot_leakage_vs_bytes(study: Study, out_dir: str | os.PathLike[str]) -> FigurePaths:
    """Write ``leakage_vs_bytes.png/.svg`` (see :func:`fig_leakage_vs_bytes`)."""
    return save_figure(fig_leakage_vs_bytes(study), out_dir, "leakage_vs_bytes")
