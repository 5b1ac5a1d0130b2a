"""Every visual choice of the report's figures in one place: sizes, fonts, colours, markers.

A method keeps its colour in every figure: :func:`method_colors` maps the sorted method labels onto a
qualitative palette. Phases (download / compute / wait / upload) and UE outcomes have fixed colours and
markers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, cast

import matplotlib as mpl
from matplotlib.colors import to_hex

#: matplotlib rcParams applied while a figure is built and saved.
RC: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "lines.linewidth": 1.8,
    "svg.hashsalt": "fedwave",  # stable element ids: identical figures give identical SVG
    "svg.fonttype": "path",
}

#: Default figure sizes in inches (width, height).
WIDE = (9.0, 4.6)
#: Raster resolution of saved PNGs (dots per inch).
PNG_DPI = 130
#: Opacity of the band around a mean line.
BAND_ALPHA = 0.18
#: Where only some seeds still have a value, a method's mean line is drawn thinner and dotted.
PARTIAL_LW = 1.2
PARTIAL_LS = ":"
#: Size of the dot marking where a seed's curve ends (points).
SEED_END_MS = 4.0
#: Colour of legend keys that explain a line or marker style rather than name a method.
KEY_COLOR = "#555555"

#: Legends go right of the plot unless a label is longer than this (characters); then below it.
LEGEND_RIGHT_MAX_CHARS = 30
#: Height of one UE's row in the timeline (inches) and the most the figure may grow to.
TIMELINE_ROW_IN = 0.22
TIMELINE_MAX_H = 9.0

#: Phase colours shared by the time split and the UE timeline (uplink = upload, downlink = download).
PHASE_COLORS = {
    "download": "#8fb3d9",
    "compute": "#e3a33b",
    "wait": "#cfcfcf",
    "queue": "#b07aa1",
    "upload": "#3b7a57",
}
#: Round-level time components (RoundRecord fields) and their colour / label.
#: Stacked in the order a round runs: broadcast, local training, queue for the channel, upload, waiting.
TIME_PARTS = (
    ("time_downlink", PHASE_COLORS["download"], "downlink"),
    ("time_compute", PHASE_COLORS["compute"], "compute"),
    ("time_queue", PHASE_COLORS["queue"], "queue"),
    ("time_uplink", PHASE_COLORS["upload"], "uplink"),
    ("time_wait", PHASE_COLORS["wait"], "waiting"),
)
#: Energy components of a UE event and their colour / label.
ENERGY_PARTS = (
    ("energy_compute_j", PHASE_COLORS["compute"], "compute"),
    ("energy_radio_j", PHASE_COLORS["upload"], "radio"),
)

#: UE outcome -> (marker, colour, legend label); ``arrived`` gets no marker.
STATUS_MARKERS = {
    "dropped": ("X", "#d62728", "dropped (late)"),
    "lost": ("x", "#7f0000", "lost (errors)"),
    "skipped": ("o", "#555555", "skipped"),
    "rejected": ("D", "#9467bd", "rejected (NaN/Inf)"),
    "undecodable": ("s", "#8c564b", "undecodable"),
    "rolled_back": ("P", "#e377c2", "rolled back"),
    "unaggregated": ("*", "#bcbd22", "too few for the aggregator"),
    "silent": ("v", "#17becf", "silent (fault)"),
    "truncated": ("^", "#7f7f7f", "truncated (AirComp: deep fade)"),
}


def bar_height(n_bars: int) -> float:
    """Figure height (inches) for a chart with ``n_bars`` horizontal bars: about 0.5 inch per bar."""
    return min(12.0, max(2.8, 1.5 + 0.5 * n_bars))


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """A stable method -> hex colour map: the sorted unique labels take tab10 (tab20 beyond ten) in order."""
    labels = sorted(set(methods))
    cmap = mpl.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    n = cmap.N
    return {m: to_hex(cmap(i % n)) for i, m in enumerate(labels)}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply :data:`RC` for the duration of the block."""
    with mpl.rc_context(cast(Any, RC)):
        yield
