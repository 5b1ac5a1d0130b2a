"""Malicious UEs in whole runs: recorded, sent through the codec and the air, resisted by robust rules."""

from __future__ import annotations

import pytest

from fedwave.config import load_config
from fedwave.fl.run import run

BASE = ["data.max_train=600", "fl.num_ues=10", "fl.rounds=6", "model.name=mlp", "fl.lr=0.1"]
FLIP = ["adversary.attack=sign_flip", "adversary.factor=4", "adversary.ues=[1,5]"]


def test_records_name_the_malicious_ues_and_their_updates_use_the_air() -> None:
    result = run(load_config(None, [*BASE, "fl.rounds=2", *FLIP, "codec=uniform:8"]))
    bad = {e.ue for e in result.events if e.behaviour == "sign_flip"}
    assert bad == {1, 5}
    assert all(e.behaviour == "honest" for e in result.events if e.ue not in (1, 5))
    for e in result.events:  # same codec, same air: attackers' payloads are as large and take airtime
        assert e.status == "arrived" and e.bytes_up > 0 and e.t_upload_end > e.t_upload_start
    sizes = {e.bytes_up for e in result.events}
    assert len(sizes) == 1  # uniform:8 gives every UE the same payload length


@pytest.mark.slow
def test_median_and_trimmed_mean_resist_sign_flip_where_mean_does_not() -> None:
    clean = run(load_config(None, BASE)).records[-1].accuracy
    acc = {
        agg: run(load_config(None, [*BASE, *FLIP, f"server.aggregator={agg}"])).records[-1].accuracy
        for agg in ("mean", "median", "trimmed_mean")
    }
    assert clean > 0.6
    assert acc["mean"] < clean - 0.2  # two UEs sending -4x their update wreck the mean
    assert acc["median"] > clean - 0.1
    assert acc["trimmed_mean"] > clean - 0.1


def test_a_lossy_round_too_small_for_krum_keeps_the_model_and_is_recorded() -> None:
    # 10 UEs with krum:1 (needs 5) under heavy packet errors: 2 to 5 of 10 updates arrive per round
    args = [
        *BASE,
        "fl.rounds=4",
        "server.aggregator=krum:1",
        "wireless.access.max_retransmissions=0",
        "wireless.access.packet_errors.enabled=true",
        "wireless.access.packet_errors.waterfall_threshold_db=28",
        "server.max_idle_rounds=null",
    ]
    result = run(load_config(None, args))
    short = [r for r in result.records if r.extra.get("unaggregated", 0) > 0]
    full = [r for r in result.records if r.arrived > 0]
    assert short and full, "the test needs rounds on both sides of krum's minimum"
    for r in short:
        assert r.arrived == 0 and r.extra["step_norm"] == 0.0 and r.extra["unaggregated"] < 5
        assert {e.status for e in result.events if e.round == r.round} <= {"unaggregated", "lost"}
    for r in full:
        assert r.arrived >= 5 and r.extra["step_norm"] > 0.0
    assert result.summary["unaggregated"] == sum(int(r.extra.get("unaggregated", 0)) for r in result.records)
