"""Figures: labels, legends and colours checked on the Figure, then PNG + SVG written and non-empty."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from fedwave.report import plots, style
from fedwave.report.curves import step_mean, step_value
from fedwave.report.study import Study, load_study


@pytest.fixture(scope="module")
def study(study_dir: Path) -> Study:
    return load_study(study_dir)


def legend_texts(fig: Figure) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def check_written(paths: plots.FigurePaths) -> None:
    assert paths.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths.png.stat().st_size > 5_000
    svg = paths.svg.read_text()
    assert "<svg" in svg and svg.rstrip().endswith("</svg>")


def test_accuracy_vs_time(study: Study, tmp_path: Path) -> None:
    fig = plots.fig_accuracy(study, "time", target=0.8)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "simulated time (s)"
    assert ax.get_ylabel() == "test accuracy"
    assert "time" in ax.get_title()
    texts = legend_texts(fig)
    assert texts == [
        "codec=fp32 (n=2)",
        "codec=qsgd:16 (n=2)",
        "mean of the seeds left",
        "a seed's last round",
        "target 0.80",
    ]
    colors = style.method_colors(study.methods)
    by_label = {line.get_label(): to_hex(line.get_color()) for line in ax.lines}
    assert by_label["codec=fp32 (n=2)"] == colors["codec=fp32"]
    assert by_label["codec=qsgd:16 (n=2)"] == colors["codec=qsgd:16"]
    assert ax.collections, "a band over seeds is drawn"
    assert ax.get_xscale() == "linear"
    check_written(plots.save_figure(fig, tmp_path, "acc_time"))


def test_accuracy_curve_spans_every_seed(study: Study) -> None:
    """Each method's line runs to its longest seed's last round end; solid while every seed has a value,
    dotted (thinner) where only some do, with a dot at each seed's end."""
    fig = plots.fig_accuracy(study, "time", target=0.8)
    ax = fig.axes[0]
    colors = style.method_colors(study.methods)
    for method, g in study.rounds.groupby("method"):
        ends = sorted(g.groupby("run_id")["t_end"].max())
        assert ends[0] < ends[-1], "the synthetic seeds end at different times"
        mine = [line for line in ax.lines if to_hex(line.get_color()) == colors[str(method)]]
        solid = next(line for line in mine if line.get_label() == f"{method} (n=2)")
        dotted = next(line for line in mine if line.get_label() == "_partial")
        dots = next(line for line in mine if line.get_label() == "_end")
        sx, sy = np.asarray(solid.get_xdata()), np.asarray(solid.get_ydata())
        dx, dy = np.asarray(dotted.get_xdata()), np.asarray(dotted.get_ydata())
        # the solid part stops at the shortest seed's end, the dotted one goes on to the longest's
        assert sx[~np.isnan(sy)].max() == pytest.approx(ends[0])
        assert dx[~np.isnan(dy)].max() == pytest.approx(ends[-1])
        assert dotted.get_linestyle() == ":" and dotted.get_linewidth() < solid.get_linewidth()
        assert np.asarray(dots.get_xdata()).tolist() == pytest.approx(ends)
    # the same on the curve itself: the grid reaches the longest seed, and count says how many seeds
    # contribute at each point (both from the first round end on, one after the shorter seed ended)
    g = study.rounds[study.rounds["method"] == "codec=fp32"].sort_values("round")
    curves = [
        (r["t_end"].to_numpy(dtype=float), r["accuracy"].to_numpy(dtype=float))
        for _, r in g.groupby("run_id")
    ]
    stats = step_mean(curves)
    ends = sorted(float(x[-1]) for x, _ in curves)
    assert stats.x[-1] == pytest.approx(ends[-1]) and stats.ends.tolist() == pytest.approx(ends)
    assert (stats.count[stats.x > ends[0]] == 1).all()
    assert (stats.count[(stats.x >= max(x[0] for x, _ in curves)) & (stats.x <= ends[0])] == 2).all()
    tail = stats.x > ends[0]
    longest = curves[int(np.argmax([x[-1] for x, _ in curves]))]
    assert stats.mean[tail] == pytest.approx(step_value(*longest, stats.x[tail]))


def test_time_axis_goes_log_when_runs_differ_in_length(study: Study) -> None:
    assert not plots.time_axis_is_log(study)  # the synthetic runs last about as long as each other
    rounds = pd.DataFrame({"run_id": ["a", "a", "b", "b"], "t_end": [0.1, 1.0, 2.0, 30.0]})
    assert plots.time_axis_is_log(cast(Study, SimpleNamespace(rounds=rounds)))
    fig = plots.fig_accuracy(study, "time", logx=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "simulated time (s), log scale"


def test_accuracy_vs_bytes_log(study: Study, tmp_path: Path) -> None:
    fig = plots.fig_accuracy(study, "bytes", logx=True, band="std")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "cumulative uplink (MB), log scale"
    assert ax.get_xscale() == "log"
    assert "± 1 std" in fig.legends[0].get_title().get_text()
    paths = plots.plot_accuracy_vs_bytes(study, tmp_path, logx=False)
    assert paths.png.name == "accuracy_vs_bytes.png"
    check_written(paths)


def test_accuracy_vs_energy_ends_at_each_seeds_total_energy(study: Study, tmp_path: Path) -> None:
    fig = plots.fig_accuracy(study, "energy")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "cumulative energy of all UEs (J)"
    assert "energy" in ax.get_title()
    colors = style.method_colors(study.methods)
    for method, g in study.rounds.groupby("method"):
        totals = sorted(g.groupby("run_id")["energy_j"].sum())  # each seed's energy over its run
        assert totals[0] > 0
        mine = [line for line in ax.lines if to_hex(line.get_color()) == colors[str(method)]]
        dots = next(line for line in mine if line.get_label() == "_end")
        assert np.asarray(dots.get_xdata()).tolist() == pytest.approx(totals)
    assert not plots.energy_axis_is_log(study)
    rounds = pd.DataFrame({"method": ["a", "a", "b"], "energy_j": [1.0, 2.0, 40.0]})
    assert plots.energy_axis_is_log(cast(Study, SimpleNamespace(rounds=rounds)))
    paths = plots.plot_accuracy_vs_energy(study, tmp_path)
    assert paths.png.name == "accuracy_vs_energy.png"
    check_written(paths)


def test_time_split_per_method_and_per_run(study: Study, tmp_path: Path) -> None:
    fig = plots.fig_time_split(study)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "mean time per round (simulated s)"
    assert [t.get_text() for t in ax.get_yticklabels()] == study.methods
    assert legend_texts(fig) == ["downlink", "compute", "queue", "uplink", "waiting"]
    run_id = str(study.runs["run_id"].iloc[0])
    one = plots.fig_time_split(study, run_id)
    assert one.axes[0].get_xlabel() == "round"
    assert one.axes[0].get_ylabel() == "time per round (simulated s)"
    assert len(one.axes[0].patches) == 5 * 10  # five parts x ten rounds
    check_written(plots.plot_time_split(study, tmp_path))


def test_ue_timeline(study: Study, tmp_path: Path, synth: Any) -> None:
    chosen = plots.pick_timeline_round(study)
    assert chosen is not None
    run_id, rnd = chosen
    fig = plots.fig_ue_timeline(study, run_id, rnd)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time since round start (simulated s)"
    assert ax.get_ylabel() == "UE"
    runs = study.runs.set_index("run_id")
    assert ax.get_title() == (
        f"UE timeline: {runs.loc[run_id, 'method']}, seed {int(runs.loc[run_id, 'seed'])}, round {rnd}"
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(u) for u in range(synth.N_UES)]
    texts = legend_texts(fig)
    assert texts[:4] == ["download", "compute", "queue", "upload"] and texts[-1] == "round closes"
    statuses = set(study.events(run_id, rnd)["status"]) - {"arrived"}
    assert statuses, "the chosen round has UEs that did not arrive"
    for status in statuses:
        assert style.STATUS_MARKERS[status][2] in texts
    check_written(plots.plot_ue_timeline(study, tmp_path, run_id, rnd))


def test_energy_per_ue(study: Study, tmp_path: Path) -> None:
    fig = plots.fig_energy_per_ue(study)
    left, right = fig.axes
    assert left.get_xlabel() == "mean energy per UE and round (J)"
    assert right.get_xlabel() == "total energy per UE over a run (J)"
    assert [t.get_text() for t in left.get_yticklabels()] == study.methods
    assert legend_texts(fig) == ["compute", "radio"]
    colors = style.method_colors(study.methods)
    boxes = [p for p in right.patches]
    assert [to_hex(p.get_facecolor()) for p in boxes] == [colors[m] for m in study.methods]
    check_written(plots.plot_energy_per_ue(study, tmp_path))


def test_plot_all_and_colour_map_is_stable(
    study: Study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: dict[str, Figure] = {}

    def fake_save(fig: Figure, out_dir: Path, name: str) -> plots.FigurePaths:
        saved[name] = fig  # writing files is covered above; here only which figures plot_all makes
        return plots.FigurePaths(Path(out_dir) / f"{name}.png", Path(out_dir) / f"{name}.svg")

    monkeypatch.setattr(plots, "save_figure", fake_save)
    written = plots.plot_all(study, tmp_path, target=0.8)
    names = {"accuracy_vs_time", "accuracy_vs_bytes", "accuracy_vs_energy", "time_split", "energy_per_ue"}
    names.add("ue_timeline")
    assert set(written) == set(saved) == names
    assert written["time_split"].svg == tmp_path / "time_split.svg"
    a = style.method_colors(["b", "a", "c"])
    assert a == style.method_colors(["c", "a", "b", "a"])
    assert len(set(style.method_colors([f"m{i}" for i in range(15)]).values())) == 15


def test_empty_study_draws_placeholders(tmp_path: Path) -> None:
    from fedwave.report.store import ResultsStore

    with ResultsStore(tmp_path / "empty") as store:
        store.ensure_study("empty", {})
    empty = load_study(tmp_path / "empty")
    figs = [
        plots.fig_accuracy(empty, target=0.5),
        plots.fig_time_split(empty),
        plots.fig_energy_per_ue(empty),
    ]
    for fig in figs:
        assert len(fig.axes) == 1 and fig.axes[0].texts[0].get_text().startswith("no ")
    assert plots.pick_timeline_round(empty) is None
