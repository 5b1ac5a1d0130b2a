"""Runs that stream their UE events and round records to disk keep none in memory and summarise them the
same."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest

from fedwave.config import load_config
from fedwave.fl.run import run
from fedwave.fl.summary import EventTotals, RoundTotals, summarize
from fedwave.records import RoundRecord

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


def test_timeline_file_holds_every_field_of_every_event_as_a_dict_writer_writes_them(tmp_path: Path) -> None:
    # The run writes the rows straight from the events' attributes; the file must be the one csv's
    # DictWriter makes of their as_dict() (header, field order, number formats, statuses set late).
    cfg = load_config(None, [*TASK, "wireless.policy.name=deadline", "wireless.policy.deadline_s=0.5"])
    kept = run(cfg, run_dir=tmp_path / "kept")
    assert {e.status for e in kept.events} >= {"arrived", "dropped"}
    expected = io.StringIO(newline="")
    writer = csv.DictWriter(expected, fieldnames=list(kept.events[0].as_dict()))
    writer.writeheader()
    writer.writerows(e.as_dict() for e in kept.events)
    assert (tmp_path / "kept" / "timeline.csv").read_bytes().decode() == expected.getvalue()


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


def test_streamed_records_are_kept_nowhere_but_on_disk_and_summarise_the_same(tmp_path: Path) -> None:
    # a target the run reaches after its first round, so time_to_accuracy_s is a number, not None
    cfg = load_config(None, [*TASK, "fl.rounds=4", "fl.target_accuracy=0.3"])
    kept = run(cfg, run_dir=tmp_path / "kept")
    streamed = run(cfg, run_dir=tmp_path / "streamed", keep_events=False, keep_records=False)
    assert len(kept.records) == 4 and streamed.records == []
    assert streamed.summary == kept.summary
    assert streamed.summary["time_to_accuracy_s"] == time_to_accuracy(kept.records, 0.3) is not None
    with (tmp_path / "streamed" / "rounds.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["round"]) for r in rows] == [0, 1, 2, 3]
    assert [float(r["accuracy"]) for r in rows] == [r.accuracy for r in kept.records]


def time_to_accuracy(records: list[RoundRecord], target: float) -> float | None:
    """The end of the first round whose accuracy reaches ``target``, by a scan of the whole list."""
    return next((r.t_end for r in records if r.accuracy >= target), None)


def _list_summary(records: list[RoundRecord], target: float) -> dict[str, object]:
    """The round-record part of the summary, written over the whole list (independent of RoundTotals)."""
    last = records[-1]
    out: dict[str, object] = {
        "rounds": len(records),
        "final_accuracy": last.accuracy,
        "best_accuracy": max(r.accuracy for r in records),
        "final_loss": last.loss,
        "simulated_time_s": last.t_end,
        "mean_ue_uplink_s": 0.0,
        "uplink_compute_ratio": math.inf,
        "unaggregated": int(sum(r.extra.get("unaggregated", 0.0) for r in records)),
        "target_accuracy": target,
        "time_to_accuracy_s": time_to_accuracy(records, target),
    }
    for key in ("time_compute", "time_uplink", "time_downlink", "time_queue", "time_wait"):
        out[f"{key}_s"] = sum(getattr(r, key) for r in records)
    for key in ("bytes_up", "bytes_down", "energy_j", "dropped", "lost", "skipped", "rejected", "silent"):
        out[key] = sum(getattr(r, key) for r in records)
    out["rolled_back"] = sum(r.rolled_back for r in records)
    return out


def _record(i: int, accuracy: float, **extra: float) -> RoundRecord:
    return RoundRecord(
        round=i,
        t_start=10.0 * i,
        t_end=10.0 * i + 7.5 + 0.1 * i,
        selected=5,
        arrived=4 - i % 2,
        dropped=i % 3,
        bytes_up=1000 + 37 * i,
        bytes_down=500 + i,
        time_compute=1.0 + 0.25 * i,
        time_uplink=2.0 + 0.5 * i,
        energy_j=0.1 * (i + 1),
        samples=40 + i,
        accuracy=accuracy,
        extra=dict(extra),
    )


def test_round_totals_match_the_sums_over_the_whole_list() -> None:
    # accuracies that fall, repeat and start with NaN (a round evaluated on nothing): max() keeps the
    # NaN as "best", yet the first round reaching a target is still found
    accuracies = [math.nan, 0.42, 0.35, 0.61, 0.61, 0.58, 0.77, 0.70]
    records = [
        _record(i, a, **({"unaggregated": 1.0} if i % 3 == 1 else {}), dp_clipped_ue=float(i))
        for i, a in enumerate(accuracies)
    ]
    totals = RoundTotals()
    for r in records:
        totals.add(r)
    assert totals.rounds == 8 and totals.last is records[-1]
    assert totals.samples == sum(r.samples for r in records) == 348
    assert totals.extra["dp_clipped_ue"] == 28.0 and totals.extra["unaggregated"] == 3.0
    # the staircase of new highs: 0.42, 0.61 (once), 0.77; NaN and the falls are not in it
    assert totals.improved == [(0.42, records[1].t_end), (0.61, records[3].t_end), (0.77, records[6].t_end)]
    for target in (0.0, 0.4, 0.42, 0.5, 0.61, 0.62, 0.77, 0.78):
        assert totals.time_to_accuracy(target) == time_to_accuracy(records, target), target
    s = summarize(totals, EventTotals(), 0.6)
    assert math.isnan(s["best_accuracy"]) and math.isnan(max(r.accuracy for r in records))
    assert s["time_to_accuracy_s"] == records[3].t_end
    assert s["rounds"] == 8 and s["final_accuracy"] == 0.70 and s["unaggregated"] == 3
    assert s["bytes_up"] == sum(r.bytes_up for r in records) == 8 * 1000 + 37 * 28
    assert s["dropped"] == sum(i % 3 for i in range(8)) == 7
    assert s["time_uplink_s"] == sum(2.0 + 0.5 * i for i in range(8))
    assert s["energy_j"] == sum(r.energy_j for r in records)
    # every field as the list-based summary computed it before the fold (sum(), max(), a scan for the target)
    assert s == {**_list_summary(records, 0.6), "energy_per_ue_j": {}, "mean_ue_compute_s": 0.0}
    assert summarize([], EventTotals()) == {"rounds": 0}
    # without the NaN round, "best" is the highest accuracy
    rest = RoundTotals()
    for r in records[1:]:
        rest.add(r)
    assert rest.best_accuracy == 0.77


def test_fedwave_run_streams_its_records_and_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line keeps neither (its memory must not grow with the rounds), yet prints the summary."""
    import fedwave.fl.run as runner
    from fedwave.cli import main

    seen: list[runner.RunResult] = []
    real = runner.run

    def spy(*args: object, **kwargs: object) -> runner.RunResult:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(result)
        return result

    monkeypatch.setattr(runner, "run", spy)
    assert main(["run", "--quiet", "--out", str(tmp_path / "r"), *(x for o in TASK for x in ("-o", o))]) == 0
    (result,) = seen
    assert result.records == [] and result.events == [] and result.summary["rounds"] == 3
    assert "final test accuracy" in capsys.readouterr().out
    with (tmp_path / "r" / "rounds.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 3
