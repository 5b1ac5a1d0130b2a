"""Summary tables on hand-made numbers, and the step-curve averaging behind the plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedwave.records import RoundRecord
from fedwave.report.curves import step_mean
from fedwave.report.store import ResultsStore
from fedwave.report.study import Study, load_study
from fedwave.report.tables import (
    default_target,
    find_baseline,
    format_table,
    per_run,
    summary_table,
    write_csv,
)

# method -> seed -> [(t_end s, accuracy, bytes_up, energy J), ...]
HAND = {
    "codec=fp32": {
        0: [(10, 0.5, 100, 1.0), (20, 0.7, 100, 1.0), (30, 0.8, 100, 1.0)],
        1: [(12, 0.6, 100, 2.0), (24, 0.8, 100, 2.0), (36, 0.9, 100, 2.0), (40, math.nan, 100, 2.0)],
    },
    "codec=uniform:8": {
        0: [(5, 0.6, 25, 0.5), (10, 0.8, 25, 0.5), (15, 0.85, 25, 0.5)],
        1: [(5, 0.5, 25, 0.5), (10, 0.6, 25, 0.5), (15, 0.7, 25, 0.5)],
    },
}


def hand_study(tmp_path: Path, data: dict[str, dict[int, list[tuple[float, float, int, float]]]]) -> Study:
    with ResultsStore(tmp_path / "hand") as store:
        store.ensure_study("hand", {"seeds": [0, 1]})
        for method, seeds in data.items():
            for seed, rows in seeds.items():
                run_id = f"{method}/{seed}"
                store.ensure_run(run_id, method, seed, {"seed": seed}, {"codec": method})
                t0 = 0.0
                for r, (t, acc, b, e) in enumerate(rows):
                    rec = RoundRecord(round=r, t_start=t0, t_end=t, accuracy=acc, bytes_up=b, energy_j=e)
                    store.commit_round(run_id, rec, [], None)
                    t0 = t
                store.set_status(run_id, "done")
    return load_study(tmp_path / "hand")


@pytest.fixture
def hand(tmp_path: Path) -> Study:
    return hand_study(tmp_path, HAND)


def test_summary_on_hand_made_numbers(hand: Study) -> None:
    df = summary_table(hand, target_accuracy=0.8).set_index("method")
    fp, q = df.loc["codec=fp32"], df.loc["codec=uniform:8"]
    assert fp["seeds"] == 2 and fp["rounds"] == 3.5
    # final accuracy = last evaluated round (the NaN round 3 of seed 1 is skipped)
    assert fp["final_acc_mean"] == pytest.approx(0.85)
    assert fp["final_acc_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert q["final_acc_mean"] == pytest.approx(0.775)
    assert q["final_acc_std"] == pytest.approx(np.std([0.85, 0.7], ddof=1))
    # time to target 0.8: fp32 reaches it at 30 s and 24 s; uniform:8 only seed 0, at 10 s
    assert fp["time_to_target_s"] == pytest.approx(27.0) and fp["reached"] == 2
    assert q["time_to_target_s"] == pytest.approx(10.0) and q["reached"] == 1
    assert fp["speedup"] == pytest.approx(1.0)
    assert q["speedup"] == pytest.approx(2.7)
    assert fp["bytes_up_mean"] == pytest.approx((300 + 400) / 2)
    assert q["bytes_up_mean"] == pytest.approx(75)
    assert fp["energy_j_mean"] == pytest.approx((3.0 + 8.0) / 2)
    assert fp["sim_time_s_mean"] == pytest.approx((30 + 40) / 2)
    assert df.attrs["baseline"] == "codec=fp32" and df.attrs["target_accuracy"] == 0.8


def test_target_nobody_reaches_gives_nan(hand: Study) -> None:
    df = summary_table(hand, target_accuracy=0.99)
    assert df["time_to_target_s"].isna().all() and (df["reached"] == 0).all()
    assert df["speedup"].isna().all()


def test_default_target_rule(hand: Study) -> None:
    # 0.9 x best final mean (0.85) = 0.765, floored to 0.01
    assert default_target(hand) == pytest.approx(0.76)
    assert summary_table(hand).attrs["target_accuracy"] == pytest.approx(0.76)


def test_baseline_choice(hand: Study) -> None:
    df = summary_table(hand, 0.8, baseline="codec=uniform:8").set_index("method")
    assert df.loc["codec=fp32", "speedup"] == pytest.approx(10 / 27)
    missing = summary_table(hand, 0.8, baseline="codec=nope")
    assert missing["speedup"].isna().all() and "codec=nope" in missing.attrs["baseline_note"]
    assert find_baseline(["codec=fp32,policy=sync", "codec=ef(topk:0.01)"])[0] == "codec=fp32,policy=sync"
    assert find_baseline(["codec=fp32x", "codec=uniform:8"])[0] is None
    assert find_baseline(["codec=fp32,p=a", "codec=fp32,p=b"])[0] is None


def test_no_fp32_method_gives_nan_speedup(tmp_path: Path) -> None:
    study = hand_study(tmp_path, {"codec=uniform:8": HAND["codec=uniform:8"]})
    df = summary_table(study, 0.8)
    assert df["speedup"].isna().all() and df.attrs["baseline"] is None


def test_one_seed_has_nan_std(tmp_path: Path) -> None:
    study = hand_study(tmp_path, {"codec=fp32": {0: HAND["codec=fp32"][0]}})
    assert math.isnan(summary_table(study, 0.8)["final_acc_std"].iloc[0])


def test_per_run(hand: Study) -> None:
    runs = per_run(hand, 0.8).set_index("run_id")
    assert runs.loc["codec=fp32/1", "rounds"] == 4
    assert runs.loc["codec=fp32/1", "time_to_target_s"] == 24
    assert math.isnan(runs.loc["codec=uniform:8/1", "time_to_target_s"])


def test_format_table_and_csv(hand: Study, tmp_path: Path) -> None:
    df = summary_table(hand, 0.8)
    text = format_table(df)
    lines = text.splitlines()
    head = next(line for line in lines if "method" in line)
    header = [c.strip() for c in head.strip("┃ ").split("┃")]
    rows = {
        cells[0]: dict(zip(header, cells))
        for line in lines
        if line.startswith("│") and (cells := [c.strip() for c in line.strip("│ ").split("│")])
    }
    assert set(rows) == {"codec=fp32", "codec=uniform:8"}
    fp, q = rows["codec=fp32"], rows["codec=uniform:8"]
    assert (fp["final accuracy"], fp["time to target (s)"], fp["reached"], fp["speed-up"]) == (
        "0.850 ± 0.071",
        "27.0",
        "2/2",
        "1.00×",
    )
    assert (q["final accuracy"], q["reached"], q["speed-up"]) == ("0.775 ± 0.106", "1/2", "2.70×")
    assert "target accuracy 0.80; baseline: codec=fp32" in [line.strip() for line in lines]  # the caption
    path = write_csv(df, tmp_path / "out" / "summary.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == list(df.columns)
    assert back["time_to_target_s"].tolist() == pytest.approx(df["time_to_target_s"].tolist())


def test_step_mean_on_hand_made_curves() -> None:
    a = (np.array([1.0, 3.0]), np.array([0.1, 0.3]))
    b = (np.array([2.0, 4.0]), np.array([0.2, 0.4]))
    s = step_mean([a, b])
    # The grid covers every seed's whole range (1 to 4): at 1 only a has a value (0.1); at 2, a holds 0.1
    # and b is 0.2; at 3, a is 0.3 and b holds 0.2; at 4, a has ended (never extrapolated) and b is 0.4.
    assert s.x.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert s.count.tolist() == [1, 2, 2, 1]
    assert s.mean.tolist() == pytest.approx([0.1, 0.15, 0.25, 0.4])
    assert s.lo.tolist() == pytest.approx([0.1, 0.1, 0.2, 0.4]) and s.hi.tolist() == pytest.approx(
        [0.1, 0.2, 0.3, 0.4]
    )
    assert s.ends.tolist() == [3.0, 4.0]
    sd = step_mean([a, b], band="std")
    assert (sd.hi - sd.mean)[1:3] == pytest.approx(np.full(2, np.std([0.1, 0.2], ddof=1)))
    assert (sd.hi - sd.mean)[[0, 3]] == pytest.approx([0.0, 0.0])  # one seed: no spread
    with pytest.raises(ValueError):
        step_mean([a], band="iqr")
    # NaN points are dropped; a curve without values is left out
    nan_curve = (np.array([1.0, 2.0]), np.array([math.nan, math.nan]))
    assert step_mean([a, nan_curve]).n == 1
    assert len(step_mean([]).x) == 0
