"""The robustness study: attacker share x aggregator gives a table and a figure in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedwave.config import config_data
from fedwave.fl.study import run_study
from fedwave.report import load_study
from fedwave.report.html import render_report
from fedwave.report.robustness import attacker_share, fig_robustness, robustness_table, varies_adversary

BASE = ["data.max_train=400", "fl.num_ues=10", "model.name=mlp", "fl.rounds=3", "adversary.attack=sign_flip"]


@pytest.fixture(scope="module")
def robust_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study_dir = tmp_path_factory.mktemp("rob") / "study"
    vary = {"adversary.fraction": ["0", "0.3"], "server.aggregator": ["mean", "median"]}
    run_study(study_dir, config_data(None, [*BASE, "adversary.factor=4"]), vary, 2)
    return study_dir


def test_the_table_has_one_cell_per_share_and_aggregator_from_the_runs(robust_study: Path) -> None:
    study = load_study(robust_study)
    assert varies_adversary(study)
    table = robustness_table(study).set_index(["line", "share"])
    assert sorted(table.index) == [
        ("server.aggregator=mean", 0.0),
        ("server.aggregator=mean", 0.3),
        ("server.aggregator=median", 0.0),
        ("server.aggregator=median", 0.3),
    ]
    assert (table["seeds"] == 2).all()
    # each cell is the mean of its runs' last accuracies (read here from the rounds, run by run)
    rounds = study.rounds.sort_values("round").groupby("run_id")["accuracy"].last()
    runs = study.runs.set_index("run_id")
    for (line, share), row in table.iterrows():
        agg = str(line).split("=")[1]
        ids = [
            rid
            for rid, r in runs.iterrows()
            if r["config"]["server"]["aggregator"] == agg and attacker_share(r["config"]) == share
        ]
        assert len(ids) == 2
        assert row["accuracy_mean"] == pytest.approx(float(rounds[ids].mean()), abs=1e-12)
        assert row["accuracy_min"] <= row["accuracy_mean"] <= row["accuracy_max"]
    # 3 of 10 UEs sending -4x their update: the mean collapses, the median does not
    assert table.loc[("server.aggregator=mean", 0.3), "accuracy_mean"] < 0.3
    assert table.loc[("server.aggregator=median", 0.3), "accuracy_mean"] > 0.5


def test_the_report_draws_accuracy_against_attacker_share(robust_study: Path) -> None:
    study = load_study(robust_study)
    fig = fig_robustness(study)
    lines = {str(line.get_label()): line for line in fig.axes[0].get_lines()}
    assert set(lines) == {"server.aggregator=mean", "server.aggregator=median"}
    table = robustness_table(study)
    for label, line in lines.items():
        part = table[table["line"] == label].sort_values("share")
        assert list(line.get_xdata()) == [0.0, 0.3]
        assert list(line.get_ydata()) == pytest.approx(list(part["accuracy_mean"]))
    html = render_report(study)
    assert 'id="fig-robustness"' in html


def test_attacker_share_counts_listed_ues_and_no_attack() -> None:
    assert attacker_share({"adversary": {"attack": "none", "fraction": 0.5}}) == 0.0
    assert attacker_share({"adversary": {"attack": "alie", "fraction": 0.2}}) == 0.2
    cfg = {"adversary": {"attack": "ipm", "ues": [1, 2, 3], "fraction": 0.0}, "fl": {"num_ues": 12}}
    assert attacker_share(cfg) == 0.25
