"""Leakage in studies (``fedwave compare --attack``): on the real small study of conftest (2 codecs x 2
seeds, mlp, 4 rounds), attacked with a short dlg.

Expected values are read straight from study.db with sqlite3 and computed with plain Python, not with
fedwave's readers, tables or plots.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedwave.cli import main
from fedwave.config import apply_overrides
from fedwave.fl.study import parse_vary, run_study
from fedwave.privacy.attacks import leakage as leakage_mod
from fedwave.report import html as report_html
from fedwave.report.html import write_report
from fedwave.report.leakage_plots import fig_leakage_vs_bytes
from fedwave.report.study import load_study
from fedwave.report.tables import format_table, summary_table

#: A short dlg: two single-sample batches per run, three L-BFGS steps.
ATTACK = ["--attack", "dlg", "-o", "attack.trials=2", "-o", "attack.dlg.iterations=3"]
#: The same settings as config overrides (for run_study in this process).
ATTACK_OVERRIDES = ["attack.in_studies=true", "attack.name=dlg", "attack.trials=2", "attack.dlg.iterations=3"]
#: Stored columns compared between studies: everything but host wall time (and the digest covering it).
SAME = "run_id, attack, status, error, psnr_median, psnr_best, ssim_median, label_accuracy, "
SAME += "uplink_bytes_median, trials, samples, model_rounds, threat_model, metrics, diagnostics, grid"


def _attacks(study: Path, columns: str = "*") -> list[dict[str, Any]]:
    """The study's attack rows as dicts, by run id, read with sqlite3."""
    conn = sqlite3.connect(f"file:{study / 'study.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    with conn:
        rows = [
            dict(r)
            for r in conn.execute(
                f"SELECT a.{columns.replace(', ', ', a.')}, u.method, u.seed FROM attacks a "
                "JOIN runs u ON u.run_id = a.run_id ORDER BY a.run_id"
            )
        ]
    conn.close()
    return rows


def _real(x: float | None) -> float:
    return math.nan if x is None else float(x)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory, kit: ModuleType) -> Path:
    """The conftest grid run in one go with ``--attack dlg`` (read-only: copy it)."""
    study = tmp_path_factory.mktemp("attacked") / "study"
    assert kit.compare(study, *ATTACK) == 0
    return study


def test_attack_does_not_change_the_runs_records(attacked: Path, kit: ModuleType, reference: Any) -> None:
    rows = _attacks(attacked)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    assert all(r["grid"][:8] == b"\x89PNG\r\n\x1a\n" and r["samples"] == 2 for r in rows)
    # every round and UE event equals the study run without --attack, value for value
    kit.assert_same_results(attacked, reference)
    assert main(["study", "verify", str(attacked)]) == 0


def test_table_and_csv_hold_the_stored_leakage(attacked: Path) -> None:
    rows = _attacks(attacked)
    table = summary_table(load_study(attacked))
    csv_rows = {r["method"]: r for r in csv.DictReader((attacked / "summary.csv").open())}
    for method in ("codec=fp32", "codec=ef(topk:0.2)"):
        mine = [r for r in rows if r["method"] == method]
        expected = {
            "psnr_median": statistics.median(_real(r["psnr_median"]) for r in mine),
            "ssim_median": statistics.median(_real(r["ssim_median"]) for r in mine),
            "label_accuracy": statistics.mean(_real(r["label_accuracy"]) for r in mine),
            "attack_wall_s": statistics.mean(_real(r["wall_s"]) for r in mine),
        }
        got = table[table["method"] == method].iloc[0]
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-12), (method, key)
            assert float(csv_rows[method][key]) == pytest.approx(value, rel=1e-12), (method, key)
        assert got["attacked"] == 2
    # the table fedwave compare prints shows them
    text = format_table(table)
    for col in ("PSNR median (dB)", "SSIM median", "label acc.", "attack wall (s)"):
        assert col in text
    fp32 = [r for r in rows if r["method"] == "codec=fp32"]
    assert f"{statistics.median(_real(r['psnr_median']) for r in fp32):.1f}" in text
    assert "leakage: dlg on the untrained model, 2 samples per run" in text


def test_report_shows_each_runs_grid_and_the_leakage_figure(attacked: Path, copy_of: Any) -> None:
    study = copy_of(attacked)
    text = write_report(study).read_text(encoding="utf-8")
    rows = _attacks(study)
    grids = dict(
        re.findall(r'<figure class="grid" id="grid-(\w+)"><img src="data:image/png;base64,([^"]+)"', text)
    )
    assert set(grids) == {r["run_id"] for r in rows}
    for r in rows:
        assert base64.b64decode(grids[r["run_id"]]) == r["grid"], r["run_id"]
        caption = f"seed {r['seed']}: PSNR median {r['psnr_median']:.1f} dB"
        assert caption in html.unescape(text)
    # the figure: one point per run at (update kB, median PSNR) and per method the median of its runs
    fig = fig_leakage_vs_bytes(load_study(study))
    plotted = [
        (ln.get_color(), float(ln.get_xdata()[0]), float(ln.get_ydata()[0]), ln.get_label())
        for ln in fig.axes[0].get_lines()
        if len(ln.get_xdata()) == 1
    ]
    points = sorted((x, y) for _, x, y, label in plotted if label == "_run")
    assert points == sorted((r["uplink_bytes_median"] / 1e3, r["psnr_median"]) for r in rows)
    medians = {label: (x, y) for _, x, y, label in plotted if label != "_run"}
    for method in ("codec=fp32", "codec=ef(topk:0.2)"):
        mine = [r for r in rows if r["method"] == method]
        assert medians[method] == (
            pytest.approx(float(np.median([r["uplink_bytes_median"] / 1e3 for r in mine]))),
            pytest.approx(float(np.median([r["psnr_median"] for r in mine]))),
        )
    embedded = re.search(r'<figure id="fig-leakage"><img src="data:image/png;base64,([^"]+)"', text)
    assert embedded is not None and base64.b64decode(embedded.group(1)) == report_html.figure_png(fig)
    assert '<a href="#leakage">Leakage</a>' in text


def test_inapplicable_attack_records_nan_and_its_message(
    tmp_path: Path, kit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "s"
    hidden = ["-o", "attack.user.provide_num_data_points=false"]  # dlg then needs a guess it lacks
    args = ["compare", "--vary", "codec=fp32", "--seeds", "1", "--study", str(study)]
    args += [a for o in kit.OVERRIDES for a in ("-o", o)] + ATTACK + hidden
    assert main(args) == 0
    out = capsys.readouterr().out
    (row,) = _attacks(study)
    assert row["status"] == "not applicable" and row["grid"] is None
    assert all(row[k] is None for k in ("psnr_median", "ssim_median", "label_accuracy", "wall_s"))
    assert "ThreatModelError: the threat model hides the number of samples" in row["error"]
    assert "attack dlg not applicable: ThreatModelError" in out
    table = summary_table(load_study(study))
    assert math.isnan(table["psnr_median"].iloc[0]) and table["attacked"].iloc[0] == 0
    text = html.unescape((study / "report.html").read_text(encoding="utf-8"))
    assert "not applicable: ThreatModelError: the threat model hides the number of samples" in text
    assert main(["study", "verify", str(study)]) == 0


def _interrupt_attack(monkeypatch: pytest.MonkeyPatch, at_call: int, after_steps: int) -> dict[str, int]:
    """Make the ``at_call``-th attack raise KeyboardInterrupt (as Ctrl-C) after ``after_steps`` L-BFGS
    steps; count the attacks started."""
    calls = {"n": 0}
    real = leakage_mod.run_attack_experiment

    def wrapped(cfg: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] != at_call:
            return real(cfg, **kw)

        def hook(trial: int, done: int, total: int, loss: float) -> None:
            if trial == 1 and done >= after_steps:
                raise KeyboardInterrupt

        return real(cfg, **{**kw, "progress": hook})

    monkeypatch.setattr(leakage_mod, "run_attack_experiment", wrapped)
    return calls


def test_study_killed_during_an_attack_resumes_without_redoing_stored_attacks(
    tmp_path: Path, kit: ModuleType, attacked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "study"
    base = apply_overrides({}, [*kit.OVERRIDES, *ATTACK_OVERRIDES])
    calls = _interrupt_attack(monkeypatch, at_call=3, after_steps=2)  # inside the third run's attack
    with pytest.raises(KeyboardInterrupt):
        run_study(study, base, parse_vary(kit.VARY), kit.SEEDS)
    stored = _attacks(study)
    assert calls["n"] == 3 and len(stored) == 2, "two attacks stored, the third interrupted"

    calls = _interrupt_attack(monkeypatch, at_call=0, after_steps=0)  # no interruption: just count
    run_study(study, base, parse_vary(kit.VARY), kit.SEEDS)
    assert calls["n"] == 2, "only the two runs without a stored attack are attacked"
    after = {r["run_id"]: r for r in _attacks(study)}
    for r in stored:  # the stored attacks are untouched: same wall time and digest
        assert after[r["run_id"]] == r
    assert _attacks(study, SAME) == _attacks(attacked, SAME)
    kit.assert_same_results(study, {"rounds": kit.results(attacked)[0], "events": kit.results(attacked)[1]})
    assert main(["study", "verify", str(study)]) == 0


def test_attack_on_the_final_model_uses_the_runs_model_also_after_a_resume(
    tmp_path: Path, kit: ModuleType
) -> None:
    from fedwave.config import config_from_dict
    from fedwave.privacy.attacks.runner import run_attack_experiment

    over = [*kit.OVERRIDES, *ATTACK_OVERRIDES, "attack.at_round=final"]
    base = apply_overrides({}, over)
    vary = parse_vary(["codec=fp32"])

    def stop_after_the_run(run: Any, what: str, info: dict[str, Any]) -> None:
        raise KeyboardInterrupt  # the run is stored as done, its attack not started

    live, resumed = tmp_path / "live", tmp_path / "resumed"
    run_study(live, base, vary, 1)
    with pytest.raises(KeyboardInterrupt):
        run_study(resumed, base, vary, 1, on_run=stop_after_the_run)
    assert _attacks(resumed) == []
    run_study(resumed, base, vary, 1)  # the attack restores the model from the run's last checkpoint

    replayed = run_attack_experiment(config_from_dict(apply_overrides(base, ["codec=fp32"])))
    expected = [[s.psnr, s.ssim, s.predicted_label] for t in replayed.trials for s in t.samples]
    for study in (live, resumed):
        (row,) = _attacks(study)
        assert row["model_rounds"] == 4
        got = [[m["psnr"], m["ssim"], m["predicted_label"]] for m in json.loads(row["metrics"])]
        assert got == expected, study.name


def test_attack_round_after_the_last_round_is_refused_before_anything_runs(
    tmp_path: Path, kit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "s"
    grid = ["compare", "--vary", "codec=fp32", "--study", str(study)]
    grid += [a for o in kit.OVERRIDES for a in ("-o", o)]
    assert main([*grid, *ATTACK, "-o", "attack.at_round=9"]) == 2
    err = capsys.readouterr().err
    assert "attack.at_round=9 is after the run's last round (fl.rounds=4)" in err and "Traceback" not in err
    assert main([*grid, "--attack", "dgl"]) == 2
    assert "unknown attack 'dgl'" in capsys.readouterr().err
    assert not study.exists()


def _state(study: Path) -> tuple[int, int]:
    """(runs done, attack results stored), read without waiting for the writer."""
    try:
        conn = sqlite3.connect(f"file:{study / 'study.db'}?mode=ro", uri=True, timeout=0.05)
        with conn:
            done = conn.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
            attacks = conn.execute("SELECT count(*) FROM attacks").fetchone()[0]
        conn.close()
        return int(done), int(attacks)
    except sqlite3.Error:
        return 0, 0


@pytest.mark.slow  # two fedwave processes: about 25 s on a loaded 2-core machine
def test_kill_9_during_an_attack_then_resume_gives_the_same_results(
    tmp_path: Path, kit: ModuleType, attacked: Path
) -> None:
    study = tmp_path / "study"
    # the fp32 half of the grid: its two runs equal those of the attacked study
    grid = [
        "--vary",
        "codec=fp32",
        "--seeds",
        "2",
        "--no-report",
        *(a for o in kit.OVERRIDES for a in ("-o", o)),
    ]
    cmd = [sys.executable, "-m", "fedwave.cli", "compare", *grid, *ATTACK, "--study", str(study)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # the second run is done and its attack not yet stored: the process is inside that attack
    while proc.poll() is None and _state(study) != (2, 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "killed before it finished"
    assert _state(study) == (2, 1)
    (first,) = _attacks(study)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = {r["run_id"]: r for r in _attacks(study)}
    assert after[first["run_id"]] == first, "the stored attack was not redone (same wall time, digest)"
    expected = [r for r in _attacks(attacked, SAME) if r["method"] == "codec=fp32"]
    assert _attacks(study, SAME) == expected and len(expected) == 2
    rounds, events = kit.results(study)
    ref_rounds, ref_events = kit.results(attacked)
    pd.testing.assert_frame_equal(
        rounds, ref_rounds[ref_rounds["run_id"].isin(rounds["run_id"])].reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(
        events, ref_events[ref_events["run_id"].isin(events["run_id"])].reset_index(drop=True)
    )
