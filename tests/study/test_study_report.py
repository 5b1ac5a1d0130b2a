"""The HTML report of a real small study (fedwave compare, 2 codecs x 2 seeds) holds the study's numbers.

Expected values are computed here straight from study.db with sqlite3 and plain Python, not with
fedwave's readers, tables or plots.
"""

from __future__ import annotations

import base64
import html
import math
import re
import sqlite3
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from fedwave.report import html as report_html
from fedwave.report import plots
from fedwave.report.html import write_report
from fedwave.report.study import load_study


def _stored(study: Path) -> dict[str, dict[str, Any]]:
    """Per run: method, seed, status and its rounds as (t_end, accuracy, bytes_up, energy_j) rows."""
    with sqlite3.connect(f"file:{study / 'study.db'}?mode=ro", uri=True) as conn:
        runs = {
            r: {"method": m, "seed": s, "status": st, "rounds": []}
            for r, m, s, st in conn.execute("SELECT run_id, method, seed, status FROM runs")
        }
        for run_id, t_end, acc, up, energy in conn.execute(
            "SELECT run_id, t_end, accuracy, bytes_up, energy_j FROM rounds ORDER BY run_id, round"
        ):
            runs[run_id]["rounds"].append((t_end, acc, up, energy))
    conn.close()
    return runs


def _table(text: str, css_class: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells (tags stripped, entities decoded) of the report's table of that class."""
    body = text.split(f'<table class="{css_class}">')[1].split("</table>")[0]
    cell = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>")
    cells = [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cell.findall(row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body)
    ]
    return cells[0], cells[1:]


def _step(points: list[tuple[float, float]], at: float) -> float:
    """The accuracy a seed shows at ``at``: that of its last round ending at or before it."""
    before = [acc for t, acc in points if t <= at]
    return before[-1] if before else math.nan


def test_report_of_a_real_study_holds_its_numbers(copy_of: Any, reference: dict[str, Any]) -> None:
    study = copy_of(reference["dir"])
    runs = _stored(study)
    text = write_report(study).read_text(encoding="utf-8")
    methods = sorted({r["method"] for r in runs.values()})
    assert methods == ["codec=ef(topk:0.2)", "codec=fp32"] and len(runs) == 4

    finals = {rid: r["rounds"][-1][1] for rid, r in runs.items()}
    mean_final = {m: statistics.mean(finals[r] for r in runs if runs[r]["method"] == m) for m in methods}
    target = math.floor(0.9 * max(mean_final.values()) / 0.01 + 1e-9) * 0.01
    assert f'<p class="caption">target accuracy {target:.2f}; baseline: codec=fp32</p>' in text

    # runs table: one row per run, its numbers from its stored rounds
    header, rows = _table(text, "runs")
    assert header[:10] == ["run", "method", "seed", "status", "rounds", "final acc.", "time to target (s)",
                           "sim. time (s)", "uplink (MB)", "energy (J)"]  # fmt: skip
    assert sorted(row[0] for row in rows) == sorted(runs)
    for row in rows:
        r = runs[row[0]]
        t_end, acc, up, energy = zip(*r["rounds"])
        hit = next((t for t, a in zip(t_end, acc) if a >= target), math.nan)
        assert row[1:10] == [
            r["method"],
            str(r["seed"]),
            "done",
            "4",
            f"{acc[-1]:.3f}",
            "—" if math.isnan(hit) else f"{hit:.1f}",
            f"{t_end[-1]:.1f}",
            f"{sum(up) / 1e6:.2f}",
            f"{sum(energy):.1f}",
        ], row[0]

    # summary table: per method over its two seeds
    header, rows = _table(text, "summary")
    assert [row[0] for row in rows] == methods
    for row in rows:
        cells = dict(zip(header, row))
        mine = [r for r in runs.values() if r["method"] == row[0]]
        acc = [r["rounds"][-1][1] for r in mine]
        hits = [next((t for t, a, _, _ in r["rounds"] if a >= target), None) for r in mine]
        reached = [h for h in hits if h is not None]
        assert cells["seeds"] == "2" and cells["rounds"] == "4"
        assert cells["final accuracy"] == f"{statistics.mean(acc):.3f} ± {statistics.stdev(acc):.3f}"
        assert cells["reached"] == f"{len(reached)}/2"
        assert cells["time to target (s)"] == (f"{statistics.mean(reached):.1f}" if reached else "—")
        up = statistics.mean(sum(x[2] for x in r["rounds"]) for r in mine)
        assert cells["uplink (MB)"] == f"{up / 1e6:.2f}"
        assert cells["sim. time (s)"] == f"{statistics.mean(r['rounds'][-1][0] for r in mine):.1f}"

    # the accuracy-vs-time figure: each method's solid line is the mean of its seeds' step curves
    loaded = load_study(study)
    fig = plots.fig_accuracy(loaded, "time", logx=plots.time_axis_is_log(loaded), target=target)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    for method in methods:
        seeds = [[(t, a) for t, a, _, _ in r["rounds"]] for r in runs.values() if r["method"] == method]
        line = lines[f"{method} (n=2)"]
        xs, ys = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        assert sorted(xs) == sorted({t for s in seeds for t, _ in s}), "the grid is the seeds' round ends"
        both = [(x, y) for x, y in zip(xs, ys) if all(s[0][0] <= x <= s[-1][0] for s in seeds)]
        assert both, "the seeds overlap in time"
        for x, y in both:
            assert y == statistics.mean(_step(s, x) for s in seeds), (method, x)
    # the report embeds exactly that figure, and the others
    figure = re.compile(r'<figure id="([a-z-]+)"><img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
    pngs = dict(figure.findall(text))
    assert set(pngs) == {
        "fig-acc-time",
        "fig-acc-bytes",
        "fig-acc-energy",
        "fig-time-split",
        "fig-energy",
        "fig-timeline",
    }
    assert base64.b64decode(pngs["fig-acc-time"]) == report_html.figure_png(fig)
    caption = re.search(r"<figcaption>Round (\d+) of (.+?): the first run", text)
    assert caption is not None
    label = html.unescape(caption.group(2))
    assert any(label == plots.run_label(loaded, rid) for rid in runs) and 0 <= int(caption.group(1)) < 4
