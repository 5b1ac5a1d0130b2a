"""The FL loop end to end on small configs: determinism, rejection, lost payloads, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from fedwave.config import load_config
from fedwave.errors import PayloadError
from fedwave.fl.checkpoint import load_checkpoint, save_checkpoint
from fedwave.fl.run import build_simulation, run
from fedwave.records import UEEvent

SMALL = ["data.max_train=400", "fl.num_ues=6", "fl.rounds=3", "model.name=mlp", "fl.fraction=0.5"]


def _records(result: object) -> list[dict]:
    return [r.as_dict() for r in result.records]  # type: ignore[attr-defined]


def test_same_config_and_seed_give_identical_records() -> None:
    cfg = load_config(None, SMALL)
    a, b = run(cfg), run(cfg)
    assert _records(a) == _records(b)
    assert [e.as_dict() for e in a.events] == [e.as_dict() for e in b.events]
    c = run(load_config(None, [*SMALL, "seed=1"]))
    assert _records(c) != _records(a)


def test_training_improves_accuracy() -> None:
    result = run(load_config(None, [*SMALL, "fl.rounds=5", "fl.fraction=1.0"]))
    assert result.records[-1].accuracy > result.records[0].accuracy
    assert result.records[-1].accuracy > 0.5


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's raw bytes (so -0.0 and 0.0, or two NaNs, compare by their bits)."""
    return t.detach().contiguous().view(torch.uint8)


def test_nan_updates_are_rejected_and_counted() -> None:
    """Every update is non-finite (lr 1e38): all are rejected and the global model is left bit for bit."""
    cfg = load_config(None, [*SMALL, "fl.lr=1e38", "fl.rounds=1"])
    events: list[UEEvent] = []
    sim = build_simulation(cfg, lambda rec, evs: events.extend(evs))
    model = sim.driver.bs.model
    before = {k: _bits(v).clone() for k, v in model.state_dict().items()}
    sim.run_rounds(1)
    rec = sim.driver.records[0]
    assert rec.rejected == rec.selected > 0
    assert rec.arrived == 0
    assert [e.status for e in events] == ["rejected"] * rec.selected
    after = {k: _bits(v) for k, v in model.state_dict().items()}
    assert after.keys() == before.keys()
    for key, old in before.items():
        assert torch.equal(after[key], old), f"{key} changed"
    # the round's evaluation is that of the untouched initial model
    initial = build_simulation(cfg).driver.bs.evaluate()
    assert (rec.accuracy, rec.loss) == (initial.accuracy, initial.loss)
    assert 0.0 < rec.accuracy < 0.5 and math.isfinite(rec.loss)


def test_undecodable_payload_is_lost_and_the_round_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None, [*SMALL, "fl.rounds=1"])
    sim = build_simulation(cfg)
    real = sim.driver.uplink.decode
    calls = {"n": 0}

    def flaky(payload: bytes, **kwargs: object) -> list:
        calls["n"] += 1
        if calls["n"] == 1:
            raise PayloadError("corrupted on purpose")
        return real(payload, **kwargs)

    monkeypatch.setattr(sim.driver.uplink, "decode", flaky)
    sim.run_rounds(1)
    rec = sim.driver.records[0]
    assert rec.lost == 1 and rec.arrived == rec.selected - 1


#: Time-varying channel: Gauss-Markov fading (its state must travel in the checkpoint) and mobility.
MOVING = [
    "wireless.cell.fading.process=gauss_markov",
    "wireless.cell.fading.coherence_time_s=0.005",
    "wireless.cell.mobility.model=random_waypoint",
]


@pytest.mark.parametrize("channel", [[], MOVING], ids=["static-iid", "gauss-markov-mobile"])
def test_resume_from_checkpoint_equals_uninterrupted_run(channel: list[str]) -> None:
    cfg = load_config(None, [*SMALL, "fl.rounds=4", "codec=ef(topk:0.1)", *channel])
    full = build_simulation(cfg)
    full.run_rounds(4)
    first = build_simulation(cfg)
    first.run_rounds(2)
    blob = save_checkpoint(first, t_now=first.t_now, next_round=first.next_round)
    resumed = build_simulation(cfg)
    load_checkpoint(resumed, blob)
    resumed.run_rounds(2)
    expected = [r.as_dict() for r in full.driver.records[2:]]
    assert [r.as_dict() for r in resumed.driver.records] == expected


def test_fedwave_run_with_gauss_markov_fading_and_mobility(tmp_path: Path) -> None:
    from fedwave.cli import main

    args = [*SMALL, *MOVING, "wireless.cell.mobility.pause_s=1"]
    assert main(["run", "-q", *[x for a in args for x in ("-o", a)], "--out", str(tmp_path / "r")]) == 0
    rows = (tmp_path / "r" / "timeline.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    ends = [float(r.split(",")[header.index("t_upload_end")]) for r in rows[1:]]
    snrs = [float(r.split(",")[header.index("snr_up_db")]) for r in rows[1:]]
    assert len(ends) == 3 * 3 and all(math.isfinite(t) and t > 0 for t in ends)
    assert all(math.isfinite(s) for s in snrs)


def test_run_directory_holds_config_records_timeline_summary(tmp_path: Path) -> None:
    cfg = load_config(None, SMALL)
    result = run(cfg, run_dir=tmp_path / "r")
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert files == {"config.yaml", "rounds.csv", "timeline.csv", "summary.json"}
    rows = (tmp_path / "r" / "rounds.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + cfg.fl.rounds
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["rounds"] == cfg.fl.rounds
    assert summary["bytes_up"] == sum(r.bytes_up for r in result.records)


def test_uplink_bytes_are_the_sum_of_payload_lengths() -> None:
    cfg = load_config(None, [*SMALL, "fl.rounds=2"])
    result = run(cfg)
    for rec in result.records:
        evs = [e for e in result.events if e.round == rec.round]
        assert rec.bytes_up == sum(e.bytes_up for e in evs) > 0


def test_records_are_plain_data() -> None:
    result = run(load_config(None, [*SMALL, "fl.rounds=1"]))
    assert dataclasses.asdict(result.records[0])["round"] == 0
