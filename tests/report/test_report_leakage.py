"""Attack results in the store, the tables and the figure, on hand-made numbers (no training, no attack).

Method A has three seeds whose median differs from their mean (so a mean would be caught), method B
two seeds of which one attack was not applicable (NaN, skipped) and one reconstruction exact (inf dB).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fedwave.records import RoundRecord
from fedwave.report import ledger
from fedwave.report.attacks import LeakageRecord
from fedwave.report.errors import DamagedStudyError
from fedwave.report.leakage import per_method
from fedwave.report.leakage_plots import fig_leakage_vs_bytes
from fedwave.report.schema import ATTACK_COLUMNS
from fedwave.report.store import ResultsStore
from fedwave.report.study import load_study
from fedwave.report.tables import display_frame, format_table, summary_table

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + (40).to_bytes(4, "big") + (30).to_bytes(4, "big") + b"rest"
# run -> (method, seed, psnr_median, ssim_median, label_accuracy, wall_s, uplink bytes)
RUNS: dict[str, tuple[str, int, float, float, float, float, float]] = {
    "a0": ("A", 0, 10.0, 0.10, 0.0, 1.0, 40_000.0),
    "a1": ("A", 1, 20.0, 0.50, 0.5, 2.0, 40_000.0),
    "a2": ("A", 2, 60.0, 0.60, 1.0, 6.0, 40_000.0),
    "b0": ("B", 0, math.inf, 1.00, 1.0, 0.5, 400.0),
    "b1": ("B", 1, math.nan, math.nan, math.nan, math.nan, math.nan),
}


def _record(run_id: str) -> LeakageRecord:
    _, _, psnr, ssim, acc, wall, size = RUNS[run_id]
    if math.isnan(psnr):
        return LeakageRecord("dlg", "not applicable", error="ThreatModelError: hidden labels")
    metrics = [{"trial": 0, "sample": 0, "psnr": psnr, "ssim": ssim}]
    return LeakageRecord(
        "dlg", "done", None, psnr, psnr, ssim, acc, wall, size, 1, 1, 0, {"batch": 1}, metrics, [{}], PNG
    )


def _write(study_dir: Path) -> Path:
    with ResultsStore(study_dir) as store:
        store.ensure_study("leak", {})
        for run_id, (method, seed, *_) in RUNS.items():
            store.ensure_run(run_id, method, seed, {}, {"m": method})
            store.commit_round(run_id, RoundRecord(round=0, t_end=1.0, accuracy=0.5, bytes_up=10), [], b"c")
            store.set_status(run_id, "done")
            store.commit_attack(run_id, _record(run_id))
    return study_dir


@pytest.fixture
def leak(tmp_path: Path) -> Path:
    return _write(tmp_path / "leak")


def test_method_columns_are_medians_and_means_of_the_stored_runs(leak: Path) -> None:
    table = summary_table(load_study(leak))
    a, b = (table[table["method"] == m].iloc[0] for m in ("A", "B"))
    assert (a["psnr_median"], a["ssim_median"], a["label_accuracy"], a["attack_wall_s"]) == (
        20.0,
        0.5,
        0.5,
        3.0,
    )
    assert a["attacked"] == 3
    assert b["psnr_median"] == math.inf and b["ssim_median"] == 1.0 and b["label_accuracy"] == 1.0
    assert b["attack_wall_s"] == 0.5 and b["attacked"] == 1  # the not-applicable seed is skipped
    shown = display_frame(table).set_index("method")
    assert shown.loc["A", "PSNR median (dB)"] == "20.0" and shown.loc["B", "PSNR median (dB)"] == "inf"
    assert shown.loc["A", "attacked"] == "3/3" and shown.loc["B", "attacked"] == "1/2"
    assert "leakage: dlg on the untrained model, 1 samples per run" in format_table(table)
    empty = per_method(load_study(leak), ["A", "C"])
    assert math.isnan(empty["psnr_median"].iloc[1]) and empty["attacked"].iloc[1] == 0


def test_figure_has_a_point_per_measured_run_and_a_median_per_method(leak: Path) -> None:
    lines = [
        ln for ln in fig_leakage_vs_bytes(load_study(leak)).axes[0].get_lines() if len(ln.get_xdata()) == 1
    ]
    runs = sorted(
        (float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in lines if ln.get_label() == "_run"
    )
    top = 60.0 + 8.0  # exact reconstructions sit on a line above the largest finite PSNR
    assert runs == [(0.4, top), (40.0, 10.0), (40.0, 20.0), (40.0, 60.0)]
    medians = {ln.get_label(): (float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in lines}
    assert medians["A"] == (40.0, 20.0) and medians["B"] == (0.4, top)


def test_every_attack_column_is_under_the_digest(leak: Path) -> None:
    conn = sqlite3.connect(leak / "study.db")
    for col in ATTACK_COLUMNS[1:-1]:
        old = conn.execute(f"SELECT {col} FROM attacks WHERE run_id = 'a1'").fetchone()[0]
        if col == "status":
            new: Any = "not applicable"
        elif old is None:
            new = "x"
        else:
            new = old + (b"x" if isinstance(old, bytes) else "x" if isinstance(old, str) else 1)
        with conn:
            conn.execute(f"UPDATE attacks SET {col} = ? WHERE run_id = 'a1'", (new,))
        with pytest.raises(DamagedStudyError, match=r"run a1 \(A, seed 1\): the attack result no longer"):
            load_study(leak)
        with conn:
            conn.execute(f"UPDATE attacks SET {col} = ? WHERE run_id = 'a1'", (old,))
        load_study(leak)  # sound again
    conn.close()


def test_a_lost_attack_result_is_noticed_and_a_restart_forgets_it(leak: Path) -> None:
    conn = sqlite3.connect(leak / "study.db")
    with conn:
        conn.execute("DELETE FROM attacks WHERE run_id = 'a0'")  # as a lost -wal file would
    conn.close()
    with pytest.raises(DamagedStudyError, match=r"run a0 \(A, seed 0\): had its attack result committed"):
        load_study(leak)
    with ResultsStore(leak) as store:
        store.reset_run("a0")
        store.reset_run("a1")
        assert store.attacked_runs() == {"a2", "b0", "b1"} and store.damage() == []


def test_a_study_without_the_attacks_table_reads_as_one_without_attacks(leak: Path) -> None:
    conn = sqlite3.connect(leak / "study.db")
    with conn:
        conn.execute("DROP TABLE attacks")  # a study written before attack results
    conn.close()
    entry = ledger.entry_path(leak, "a0")
    data = json.loads(entry.read_text())
    del data["attacks"]  # a ledger entry written before attack results
    entry.write_text(json.dumps(data))
    for run_id in RUNS:
        if run_id != "a0":
            ledger.remove_entry(leak, run_id)
    study = load_study(leak)
    assert study.attacks.empty and "psnr_median" not in summary_table(study).columns
    assert ledger.read_entries(leak)[0].attacks == 0
    with ResultsStore(leak) as store:  # a writer adds the table
        assert store.attacked_runs() == set()
        store.commit_attack("a0", _record("a0"))
    assert list(load_study(leak).attacks["run_id"]) == ["a0"]


def test_record_status_is_checked() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        LeakageRecord("dlg", "maybe")


def test_report_with_leakage_is_well_formed_and_self_contained(leak: Path, synth: Any) -> None:
    from fedwave.report.html import write_report

    text = write_report(leak).read_text(encoding="utf-8")
    parser = synth.Structure()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    ids = [a["id"] for _, a in parser.tags if a.get("id")]
    assert len(ids) == len(set(ids)) and "leakage" in ids and "fig-leakage" in ids
    imgs = {a["alt"]: a for t, a in parser.tags if t == "img"}
    grids = [a for alt, a in imgs.items() if alt.startswith("dlg reconstructions")]
    assert len(grids) == 4, "one grid per measured run"  # b1 was not applicable: no grid
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs.values())
    assert all((a["width"], a["height"]) == ("40", "30") for a in grids)  # read from the PNG header
    leak_rows = text.split('<table class="leakage">')[1].split("</table>")[0].count("<tr>")
    assert leak_rows == 1 + len(RUNS)
    assert "not applicable: ThreatModelError: hidden labels" in text
