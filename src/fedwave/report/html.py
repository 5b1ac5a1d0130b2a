"""One self-contained HTML file per study: summary, figures, runs, configurations, software versions.

Figures are embedded as base64 PNG ``<img>`` elements and the CSS is inline; a Content-Security-Policy
forbids every external resource, so the file opens from disk with no server and no network.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import yaml
from matplotlib.figure import Figure

from fedwave.report import leakage, leakage_plots, plots, privacy, robustness, style, tables
from fedwave.report.study import Study, load_study
from fedwave.report.versions import software_versions

#: Name of the report file written into the study directory by default.
REPORT_NAME = "report.html"

_CSS = """
:root { --fg: #1d232a; --muted: #5b6570; --line: #d8dde3; --bg: #ffffff; --panel: #f5f7f9;
        --accent: #1f5f99; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.7rem; margin: 0 0 4px; }
h2 { font-size: 1.25rem; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.02rem; margin: 20px 0 6px; }
p.meta, p.caption, figcaption, .note { color: var(--muted); font-size: 0.9rem; }
nav { margin: 12px 0 0; font-size: 0.92rem; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
nav a:hover { text-decoration: underline; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 6px 0; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: var(--panel); font-weight: 600; white-space: normal; vertical-align: bottom; }
th:first-child, td:first-child { text-align: left; }
td.text, th.text { text-align: left; }
tr.baseline td { background: #eef5fc; }
tbody tr:hover td { background: #f0f3f6; }
td .error { display: inline-block; min-width: 240px; white-space: normal; color: #a11; }
.status { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 0.8rem; color: #fff; }
.status-done { background: #2e7d32; } .status-failed { background: #c62828; }
.status-running { background: #1565c0; } .status-pending { background: #757575; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 6px;
          vertical-align: baseline; }
figure { margin: 18px 0 26px; }
figure.grid { display: inline-block; margin: 6px 14px 14px 0; vertical-align: top; }
h4 { font-size: 0.95rem; margin: 14px 0 4px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line);
             border-radius: 4px; }
details { margin: 6px 0; border: 1px solid var(--line); border-radius: 4px; background: var(--panel); }
summary { cursor: pointer; padding: 6px 10px; font-weight: 600; }
pre { margin: 0; padding: 10px 14px; background: #fff; border-top: 1px solid var(--line); overflow-x: auto;
      font: 0.84rem/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
dl.defs { margin: 0; padding: 4px 14px 10px; }
dl.defs dt { font-weight: 600; margin-top: 6px; } dl.defs dd { margin: 0 0 0 18px; }
footer { margin-top: 40px; color: var(--muted); font-size: 0.82rem; }
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def figure_png(fig: Figure) -> bytes:
    """``fig`` rendered as PNG bytes at the report's resolution."""
    buf = io.BytesIO()
    with style.style():
        fig.savefig(buf, format="png", dpi=style.PNG_DPI)
    return buf.getvalue()


def _img(fig: Figure, alt: str, caption: str, fig_id: str) -> str:
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    width, height = (round(v * style.PNG_DPI) for v in fig.get_size_inches())
    return (
        f'<figure id="{fig_id}"><img src="data:image/png;base64,{data}" alt="{_e(alt)}" '
        f'width="{width}" height="{height}"><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    css_class: str,
    row_classes: Sequence[str] | None = None,
    text_cols: Sequence[int] = (0,),
) -> str:
    """An HTML table; cells are already-escaped HTML."""

    def cls(i: int) -> str:
        return ' class="text"' if i in text_cols else ""

    head = "".join(f'<th{cls(i)} scope="col">{_e(h)}</th>' for i, h in enumerate(header))
    body = []
    for n, row in enumerate(rows):
        rc = f' class="{row_classes[n]}"' if row_classes and row_classes[n] else ""
        body.append(f"<tr{rc}>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>")
    return (
        f'<div class="scroll"><table class="{css_class}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _summary_section(summary: pd.DataFrame, colors: dict[str, str]) -> str:
    shown = tables.display_frame(summary)
    base = summary.attrs.get("baseline")
    rows = []
    for row in shown.itertuples(index=False):
        cells = [_e(v) for v in row]
        swatch = f'<span class="swatch" style="background:{colors.get(row[0], "#999")}"></span>'
        cells[0] = swatch + cells[0]
        rows.append(cells)
    classes = ["baseline" if m == base else "" for m in shown["method"]]
    return (
        '<section id="summary"><h2>Summary per method</h2>'
        f'<p class="caption">{_e(tables.table_caption(summary))}</p>'
        + _table(list(shown.columns), rows, "summary", classes)
        + _definitions(with_leakage="psnr_median" in summary.columns)
        + "</section>"
    )


def _definitions(with_leakage: bool = False) -> str:
    items = {
        "final accuracy": "test accuracy after a run's last evaluated round; mean ± sample std over seeds.",
        "time to target": "simulated seconds until test accuracy first reaches the target; mean over the "
        "seeds that reach it (reached = how many did).",
        "speed-up": "baseline time to target / method time to target.",
        "uplink, energy, sim. time": "totals per run (MB = 10^6 bytes, joules, simulated s), "
        "mean over seeds.",
        "epsilon": "(studies with privacy settings) the accountant's epsilon after a run's last round, at "
        "the run's delta (dp.delta); one value, or the range over seeds when they differ (under distributed "
        "noise dropped UEs raise it). inf: a round released data without noise (z = 0 or no clipping). "
        "unaccounted: the users.md local noise (local_privacy), an absolute scale without an epsilon.",
        "curves": "a seed's accuracy holds from one round end to the next (a step function); seeds are "
        "averaged on the union of their round ends over the seeds that have a value there. "
        "A method's line spans all its seeds: it is solid where every seed contributes and thin and dotted "
        "where only some seeds are still running (their mean; a finished seed is not extended). The band "
        "spans the seeds' minimum to maximum; a dot on the line marks where each seed ends.",
    }
    if with_leakage:
        items["PSNR median, SSIM median"] = (
            "each run's median over its attacked samples (reconstruction vs true sample, data range 1); "
            "the method's value is the median over its seeds."
        )
        items["label acc."] = "fraction of labels the attack recovered; mean over seeds."
        items["attack wall, attacked"] = (
            "host wall-clock seconds of a run's attack, mean over seeds; runs with a measured attack "
            "(not 'not applicable') out of the method's seeds."
        )
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items.items())
    return f'<details><summary>Definitions</summary><dl class="defs">{body}</dl></details>'


def _when(stamp: object) -> str:
    """An ISO timestamp shortened to ``YYYY-MM-DD HH:MM`` (UTC)."""
    text = str(stamp) if isinstance(stamp, str) else ""
    return text[:16].replace("T", " ") if text else "—"


def _runs_section(study: Study, target: float) -> str:
    runs = tables.per_run(study, target)
    with_errors = bool(runs["error"].notna().any())
    header = ["run", "method", "seed", "status", "rounds", "final acc.", "time to target (s)"]
    header += ["sim. time (s)", "uplink (MB)", "energy (J)", "started (UTC)", "finished (UTC)"]
    header += ["error"] if with_errors else []
    started = dict(zip(study.runs["run_id"], study.runs["started"]))
    finished = dict(zip(study.runs["run_id"], study.runs["finished"]))
    rows = []
    for r in runs.itertuples(index=False):
        status = f'<span class="status status-{_e(r.status)}">{_e(r.status)}</span>'
        row = [_e(r.run_id), _e(r.method), _e(r.seed), status, _e(r.rounds)]
        row += [_e(_fmt(r.final_accuracy, ".3f")), _e(_fmt(r.time_to_target_s, ".1f"))]
        row += [_e(_fmt(r.sim_time_s, ".1f")), _e(_fmt(r.bytes_up / 1e6, ".2f"))]
        row += [_e(_fmt(r.energy_j, ".1f")), _e(_when(started.get(r.run_id)))]
        row += [_e(_when(finished.get(r.run_id)))]
        if with_errors:
            row.append(f'<span class="error">{_e(r.error)}</span>' if isinstance(r.error, str) else "")
        rows.append(row)
    text_cols = (0, 1, 3, 10, 11, 12)
    return (
        '<section id="runs"><h2>Runs</h2>' + _table(header, rows, "runs", text_cols=text_cols) + "</section>"
    )


def _fmt(x: float, spec: str) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _configs_section(study: Study) -> str:
    parts = [
        '<section id="configs"><h2>Configurations</h2>',
        '<p class="note">The resolved config of each method\'s first seed (seeds differ only in '
        "their seed).</p>",
    ]
    first = study.runs.drop_duplicates("method")
    for r in first.itertuples(index=False):
        text = yaml.safe_dump(r.config, sort_keys=True, default_flow_style=False, allow_unicode=True)
        varied = ", ".join(f"{k}={v}" for k, v in sorted(r.varied.items()))
        parts.append(
            f"<details><summary>{_e(r.method)}"
            f'<span class="note"> — varied: {_e(varied or "nothing")}</span></summary>'
            f"<pre>{_e(text)}</pre></details>"
        )
    spec = yaml.safe_dump(study.spec, sort_keys=True, default_flow_style=False, allow_unicode=True)
    parts.append(f"<h3>Study spec</h3><details><summary>spec</summary><pre>{_e(spec)}</pre></details>")
    parts.append("</section>")
    return "".join(parts)


def _versions_section(study: Study) -> str:
    now = software_versions()
    names = list(dict.fromkeys([*now, *study.versions]))
    rows = [[_e(n), _e(study.versions.get(n, "—")), _e(now.get(n, "—"))] for n in names]
    return (
        '<section id="software"><h2>Software</h2>'
        + _table(
            ["package", "when the study was created", "this report"], rows, "versions", text_cols=(0, 1, 2)
        )
        + "</section>"
    )


def _figures_section(study: Study, target: float) -> str:
    tgt = target if math.isfinite(target) else None
    logx = plots.bytes_axis_is_log(study)
    logt = plots.time_axis_is_log(study)
    loge = plots.energy_axis_is_log(study)
    figs = [
        (
            plots.fig_accuracy(study, "time", logx=logt, target=tgt),
            "fig-acc-time",
            "Test accuracy against simulated time",
            "Mean over seeds (line) and min–max over seeds (band); accuracy steps at round ends. "
            "Dotted where only some seeds are still running; a dot marks where each seed ends"
            + ("; log time scale." if logt else "."),
        ),
        (
            plots.fig_accuracy(study, "bytes", logx=logx, target=tgt),
            "fig-acc-bytes",
            "Test accuracy against cumulative uplink bytes",
            "Same curves against the cumulative uplink volume (MB = 10^6 bytes)"
            + (", log scale." if logx else "."),
        ),
        (
            plots.fig_accuracy(study, "energy", logx=loge, target=tgt),
            "fig-acc-energy",
            "Test accuracy against the energy spent",
            "Same curves against the cumulative energy of all UEs (compute and radio, J)"
            + (", log scale." if loge else "."),
        ),
        (
            plots.fig_time_split(study),
            "fig-time-split",
            "Mean time per round split by phase",
            "Mean simulated seconds per round spent in each phase, over all rounds and seeds.",
        ),
        (
            plots.fig_energy_per_ue(study),
            "fig-energy",
            "Energy per UE and method",
            "Left: mean energy per UE and round. Right: each UE's total over a run, all seeds pooled.",
        ),
    ]
    chosen = plots.pick_timeline_round(study)
    if chosen is not None:
        run_id, rnd = chosen
        label = plots.run_label(study, run_id)
        figs.append(
            (
                plots.fig_ue_timeline(study, run_id, rnd),
                "fig-timeline",
                f"Timeline of the UEs in round {rnd} of {label}",
                f"Round {rnd} of {label}: the first run's round with the most UEs that did not "
                "arrive. Markers on the right give each such UE's outcome.",
            )
        )
    if privacy.varies_dp(study):
        figs.append(
            (
                privacy.fig_privacy_utility(study),
                "fig-privacy-utility",
                "Final accuracy against epsilon",
                "Privacy vs utility: each point is one run (method and seed), its final test accuracy "
                "against its epsilon after the last round (log scale, at the run's delta); an open "
                "diamond is a method's mean over seeds. Runs with epsilon = inf (z = 0, or no DP) stand "
                "right of the dotted break.",
            )
        )
    if robustness.varies_adversary(study):
        figs.append(
            (
                robustness.fig_robustness(study),
                "fig-robustness",
                "Final accuracy against the share of malicious UEs",
                "Robustness: each line is one defence (the other varied keys, typically "
                "server.aggregator), its final test accuracy (mean over seeds; band: min to max) against "
                "the share of UEs that run the attack.",
            )
        )
    body = "".join(_img(fig, alt, caption, fid) for fig, fid, alt, caption in figs)
    return f'<section id="figures"><h2>Figures</h2>{body}</section>'


def _png_img(png: bytes, alt: str) -> str:
    """An ``<img>`` of stored PNG bytes at their own size (read from the PNG header)."""
    width, height = struct.unpack(">II", png[16:24])
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}" width="{width}" height="{height}">'


def _leakage_section(study: Study, colors: dict[str, str]) -> str:
    """Per-run leakage table, the leakage-vs-bytes figure and each run's picture grid, by method."""
    runs = leakage.per_run(study)
    header = ["run", "method", "seed", "attack", "PSNR median (dB)", "PSNR best (dB)", "SSIM median"]
    header += ["label acc.", "update (kB)", "model round", "attack wall (s)", "note"]
    rows = []
    for r in runs.itertuples(index=False):
        row = [_e(r.run_id), _e(r.method), _e(r.seed), _e(r.attack), _e(_fmt(r.psnr_median, ".1f"))]
        row += [_e(_fmt(r.psnr_best, ".1f")), _e(_fmt(r.ssim_median, ".3f"))]
        row += [_e(_fmt(r.label_accuracy, ".2f")), _e(_fmt(r.uplink_bytes_median / 1e3, ".1f"))]
        row += [_e(r.model_rounds), _e(_fmt(r.attack_wall_s, ".1f"))]
        row.append(f'<span class="error">{_e(r.error)}</span>' if isinstance(r.error, str) else "")
        rows.append(row)
    parts = [
        '<section id="leakage"><h2>Leakage</h2>',
        f'<p class="caption">{_e(leakage.leakage_note(study))}: what an honest-but-curious BS '
        "reconstructs from one user's update after the method's codec and local noise. PSNR and SSIM "
        "compare reconstructions with the true samples (data range 1), after matching them; wall times "
        "are host seconds.</p>",
        _table(header, rows, "leakage", text_cols=(0, 1, 3, 11)),
        _img(
            leakage_plots.fig_leakage_vs_bytes(study),
            "Leakage (PSNR) against uplink bytes",
            "Each small point is one run (method and seed): the median PSNR of its attacked samples "
            "against the median size of its attacked updates as received (kB = 10^3 bytes); the large "
            "marker is the method's median over seeds.",
            "fig-leakage",
        ),
        "<h3>Reconstructions</h3>",
    ]
    a = study.attacks
    for method, g in a.groupby("method", sort=True):
        swatch = f'<span class="swatch" style="background:{colors.get(str(method), "#999")}"></span>'
        parts.append(f"<h4>{swatch}{_e(method)}</h4>")
        for r in g.itertuples(index=False):
            caption = f"seed {r.seed}: " + (
                f"PSNR median {_fmt(r.psnr_median, '.1f')} dB, label accuracy {_fmt(r.label_accuracy, '.2f')}"
                if r.status == "done"
                else f"not applicable: {r.error}"
            )
            img = _png_img(r.grid, f"{r.attack} reconstructions, {method}, seed {r.seed}") if r.grid else ""
            parts.append(
                f'<figure class="grid" id="grid-{_e(r.run_id)}">{img}'
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
    parts.append("</section>")
    return "".join(parts)


def render_report(study: Study, target_accuracy: float | None = None, baseline: str | None = None) -> str:
    """The report of ``study`` as one HTML5 string (see :func:`write_report`)."""
    summary = tables.summary_table(study, target_accuracy, baseline)
    target = float(summary.attrs["target_accuracy"])
    colors = style.method_colors(study.methods)
    runs = study.runs
    n_done = int((runs["status"] == "done").sum())
    meta = (
        f"created {study.created} · {len(runs)} runs ({n_done} done) · "
        f"{len(study.methods)} methods · study directory {study.study_dir.resolve()}"
    )
    with_leakage = leakage.has_leakage(study)
    sections = [
        _summary_section(summary, colors),
        _figures_section(study, target),
        *([_leakage_section(study, colors)] if with_leakage else []),
        _runs_section(study, target),
        _configs_section(study),
        _versions_section(study),
    ]
    links = [("summary", "Summary"), ("figures", "Figures")]
    links += [("leakage", "Leakage")] if with_leakage else []
    links += [("runs", "Runs"), ("configs", "Configurations"), ("software", "Software")]
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in links)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        f"<title>fedwave study {_e(study.name)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f'<header><h1>fedwave study: {_e(study.name)}</h1><p class="meta">{_e(meta)}</p>'
        f"<nav>{nav}</nav></header>\n"
        + "\n".join(sections)
        + f"\n<footer>Generated by fedwave {_e(software_versions()['fedwave'])}. Times are simulated "
        "seconds; MB = 10^6 bytes; energy in joules.</footer>\n</main>\n</body>\n</html>\n"
    )


def write_report(
    study_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    target_accuracy: float | None = None,
    baseline: str | None = None,
) -> Path:
    """Write the self-contained HTML report of the study in ``study_dir``; return its path.

    ``out`` defaults to ``study_dir/report.html``; ``target_accuracy`` to
    :func:`~fedwave.report.tables.default_target`; ``baseline`` (the method speed-ups are measured
    against) to the method with ``codec=fp32``. The file is written atomically.
    """
    study = load_study(study_dir)
    path = Path(out) if out is not None else Path(study_dir) / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_report(study, target_accuracy, baseline), encoding="utf-8")
    os.replace(tmp, path)
    return path
