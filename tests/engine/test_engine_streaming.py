"""Runs that stream their UE events to disk keep none in memory and summarise them the same."""

from __future__ import annotations

import csv
from pathlib import Path

from fedwave.config import load_config
from fedwave.fl.run import run
from fedwave.fl.summary import EventTotals, summarize

TASK = ["data.dataset=digits", "model.name=2nn", "fl.num_ues=6", "fl.rounds=3", "fl.fraction=0.5"]


def test_streamed_run_keeps_no_events_and_gives_the_same_summary(tmp_path: Path) -> None:
    cfg = load_config(None, [*TASK, "wireless.policy.name=deadline", "wireless.policy.deadline_s=1.5"])
    kept = run(cfg, run_dir=tmp_path / "kept")
    streamed = run(cfg, run_dir=tmp_path / "streamed", keep_events=False)
    assert len(kept.events) == 9 and streamed.events == []
    assert streamed.summary == kept.summary
    # every event reached the disk
    with (tmp_path / "streamed" / "timeline.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["round"]), int(r["ue"])) for r in rows] == [(e.round, e.ue) for e in kept.events]


def test_event_totals_fold_rounds_like_the_whole_list() -> None:
    cfg = load_config(None, TASK)
    result = run(cfg)
    totals = EventTotals()
    for r in range(3):  # round by round, as a streamed run folds them
        totals.add(e for e in result.events if e.round == r)
    by_rounds = summarize(result.records, totals)
    whole = summarize(result.records, result.events)
    assert by_rounds == whole
    # and the fold is not vacuous: the means are positive, the energy covers every UE that took part
    assert whole["mean_ue_compute_s"] > 0 and whole["mean_ue_uplink_s"] > 0
    assert set(whole["energy_per_ue_j"]) == {e.ue for e in result.events}
    mean_up = sum(e.t_upload_end - e.t_upload_start for e in result.events) / len(result.events)
    assert whole["mean_ue_uplink_s"] == mean_up
