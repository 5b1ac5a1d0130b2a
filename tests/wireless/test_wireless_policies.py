"""Round policies, retransmissions and event-triggered skips on hand-built scenarios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedwave.sim import Clock
from fedwave.sim.asyncfl import staleness_weight

NEAR = [(50.0, 0.0), (0.0, 60.0), (-70.0, 0.0), (0.0, -80.0)]


def compute_s(ue: int) -> float:
    return float(ue + 1)  # UE k computes k+1 s (samples * 1e6 FLOP / 1e9 FLOP/s)


def samples(round: int, ue: int) -> int:
    return 1000 * (ue + 1)


def test_deadline_drops_exactly_the_late_ues(make_quiet_cell, fake_driver) -> None:
    cfg = make_quiet_cell(NEAR, policy={"name": "deadline", "deadline_s": 2.5})
    drv = fake_driver(payload=1000, samples=samples)
    t_end = Clock(cfg, 4, 1e6, seed=0).run(drv, 2, 4)
    rec = drv.records[0]
    assert rec.t_end == pytest.approx(2.5)
    assert t_end == pytest.approx(5.0)
    status = {e.ue: e.status for e in drv.events[0]}
    assert status == {0: "arrived", 1: "arrived", 2: "dropped", 3: "dropped"}
    assert (rec.arrived, rec.dropped, rec.lost) == (2, 2, 0)
    assert [a.ue for a in drv.aggregations[0][1]] == [0, 1]
    late = {e.ue: e for e in drv.events[0]}[2]
    # cut at the deadline: compute energy pro rata, nothing sent
    assert late.t_compute_end == pytest.approx(2.5) and late.t_upload_end == pytest.approx(2.5)
    frac = (2.5 - late.t_compute_start) / 3.0
    assert late.energy_compute_j == pytest.approx(1e-10 * 1e6 * 3000 * frac)
    assert late.bytes_up == 0 and late.energy_radio_j == 0.0
    assert rec.duration == pytest.approx(
        rec.time_compute + rec.time_uplink + rec.time_downlink + rec.time_wait
    )


def test_deadline_met_by_everyone_closes_early(make_quiet_cell, fake_driver) -> None:
    cfg = make_quiet_cell(NEAR, policy={"name": "deadline", "deadline_s": 100.0})
    drv = fake_driver(payload=1000, samples=samples)
    Clock(cfg, 4, 1e6, seed=0).run(drv, 1, 4)
    assert drv.records[0].arrived == 4 and drv.records[0].t_end < 4.1


def test_first_k_ends_at_the_kth_arrival(make_quiet_cell, fake_driver) -> None:
    cfg = make_quiet_cell(NEAR, policy={"name": "first_k", "k": 2})
    drv = fake_driver(payload=1000, samples=samples)
    Clock(cfg, 4, 1e6, seed=0).run(drv, 1, 4)
    rec, ev = drv.records[0], {e.ue: e for e in drv.events[0]}
    assert rec.t_end == ev[1].t_upload_end
    assert [ev[u].status for u in range(4)] == ["arrived", "arrived", "dropped", "dropped"]
    assert [a.ue for a in drv.aggregations[0][1]] == [0, 1]
    assert rec.time_compute == pytest.approx(2.0)  # critical path: UE 1


def test_first_k_rejects_k_above_clients(make_quiet_cell, fake_driver) -> None:
    from fedwave.errors import ConfigError

    cfg = make_quiet_cell(NEAR, policy={"name": "first_k", "k": 5})
    with pytest.raises(ConfigError, match=r"policy\.k"):
        Clock(cfg, 4, 1e6, seed=0).run(fake_driver(), 1, 4)


def test_retransmissions_force_loss_and_multiply_airtime(make_quiet_cell, fake_driver) -> None:
    cfg = make_quiet_cell(
        NEAR[:2],
        access={
            "header_bytes": 40,
            "max_retransmissions": 3,
            "packet_errors": {"enabled": True, "waterfall_threshold_db": 80.0},
        },
    )
    drv = fake_driver(payload=10_000, samples=100)
    Clock(cfg, 2, 1e6, seed=0).run(drv, 1, 2)
    for e in drv.events[0]:
        assert e.status == "lost" and e.attempts == 4
        one = 8 * (10_000 + 40) / e.rate_up_bps
        assert e.t_upload_end - e.t_upload_start == pytest.approx(4 * one)
        assert e.energy_radio_j == pytest.approx(10 ** ((23 - 30) / 10) * 4 * one)
    assert drv.records[0].lost == 2 and drv.aggregations[0][1] == []
    assert drv.records[0].bytes_up == 2 * 10_000


def test_no_errors_means_one_attempt(make_quiet_cell, fake_driver) -> None:
    cfg = make_quiet_cell(
        NEAR[:2], access={"packet_errors": {"enabled": True, "waterfall_threshold_db": -30.0}}
    )
    drv = fake_driver(payload=10_000, samples=100)
    Clock(cfg, 2, 1e6, seed=0).run(drv, 1, 2)
    for e in drv.events[0]:
        assert e.status == "arrived" and e.attempts == 1
        assert e.t_upload_end - e.t_upload_start == pytest.approx(8 * (10_000 + 40) / e.rate_up_bps)


def test_attempts_come_from_the_errors_stream(fake_driver) -> None:
    from fedwave.channel import packet_error_probability
    from fedwave.channel.link import counter_attempts
    from fedwave.counter_rng import stream_key
    from fedwave.sim import WirelessConfig

    cfg = WirelessConfig.model_validate(
        {
            "access": {
                "max_retransmissions": 2,
                "packet_errors": {"enabled": True, "waterfall_threshold_db": 14.0},
            }
        }
    )
    drv = fake_driver(payload=5000, samples=10)
    Clock(cfg, 12, 1e6, seed=5).run(drv, 2, 12)
    seen = set()
    for rnd in (0, 1):
        for e in drv.events[rnd]:
            # q on the MEAN SNR of the UE's band (the waterfall formula already averages the fading)
            q = float(packet_error_probability(10 ** (e.snr_up_db / 10), 10**1.4))
            a, ok = counter_attempts(np.array([stream_key(5, "errors", rnd, e.ue)], dtype=np.uint64), q, 2)
            assert e.attempts == int(a[0]) and e.status == ("arrived" if bool(ok[0]) else "lost")
            seen.add(e.status)
    assert len(seen) == 2  # the scenario has both outcomes


def test_event_triggered_skip(make_quiet_cell, fake_driver) -> None:
    cfg = make_quiet_cell(
        NEAR[:3], access__header_bytes=40, event_trigger={"enabled": True, "skip_message_bytes": 2}
    )
    drv = fake_driver(payload=30_000, samples=100, skip={1})
    Clock(cfg, 3, 1e6, seed=0).run(drv, 1, 3)
    ev = {e.ue: e for e in drv.events[0]}
    assert ev[1].status == "skipped" and ev[1].bytes_up == 2
    assert ev[1].t_upload_end - ev[1].t_upload_start == pytest.approx(8 * (2 + 40) / ev[1].rate_up_bps)
    # FDMA: the band is split between the two UEs that upload an update, not among all three
    for ue in (0, 2):
        d = math.hypot(*NEAR[ue])
        snr = (
            10 ** ((23 - 30) / 10) * 10 ** (-(128.1 + 37.6 * math.log10(d / 1000)) / 10) / (10**-20.4 * 10e6)
        )
        assert ev[ue].rate_up_bps == pytest.approx(10e6 * math.log2(1 + snr), rel=1e-9)
    rec = drv.records[0]
    assert (rec.arrived, rec.skipped) == (2, 1)
    assert rec.bytes_up == 2 * 30_000 + 2
    assert [(a.ue, a.skip) for a in drv.aggregations[0][1]] == [
        (1, True),
        (0, False),
        (2, False),
    ]  # short message first


def test_end_round_false_stops_the_run(make_quiet_cell, fake_driver) -> None:
    drv = fake_driver(stop_after=2)
    Clock(make_quiet_cell(NEAR), 4, 1e6, seed=0).run(drv, 10, 4)
    assert len(drv.records) == 2


def test_async_staleness_and_weights(make_quiet_cell, fake_driver) -> None:
    # 3 UEs train at once, aggregation after every 2 arrivals. Compute: UE0 1 s, UE1 2.5 s, UE2 3.6 s;
    # airtimes are microseconds. Replacements: the lowest idle id. By hand:
    #  t~1   UE0(v0) arrives; replacement UE0 gets v0
    #  t~2   UE0(v0) arrives -> round 0: [UE0 s=0, UE0 s=0], version 1; UE0 gets v1
    #  t~2.5 UE1(v0) arrives; UE1 gets v1
    #  t~3   UE0(v1) arrives -> round 1: [UE1 s=1, UE0 s=0], version 2; UE0 gets v2
    #  t~3.6 UE2(v0) arrives; UE2 gets v2
    #  t~4   UE0(v2) arrives -> round 2: [UE2 s=2, UE0 s=0]
    secs = {0: 1.0, 1: 2.5, 2: 3.6}
    cfg = make_quiet_cell(NEAR[:3], policy={"name": "async", "buffer_k": 2, "concurrency": 3})
    drv = fake_driver(payload=100, samples=lambda r, ue: int(secs[ue] * 1000), broadcast=100)
    t_end = Clock(cfg, 3, 1e6, seed=0).run(drv, 3, 3)
    got = [[(a.ue, a.staleness) for a in arr] for _, arr in drv.aggregations]
    assert got == [[(0, 0), (0, 0)], [(1, 1), (0, 0)], [(2, 2), (0, 0)]]
    weights = [[a.weight for a in arr] for _, arr in drv.aggregations]
    assert weights[1] == [pytest.approx(1 / math.sqrt(2)), 1.0]
    assert weights[2] == [pytest.approx(1 / math.sqrt(3)), 1.0]
    assert staleness_weight(3) == 0.5
    assert [r.round for r in drv.records] == [0, 1, 2]
    assert [r.t_end for r in drv.records] == pytest.approx([2.0, 3.0, 4.0], abs=1e-3)
    assert t_end == drv.records[-1].t_end
    # each round's record holds the messages that arrived in it; the time split sums to its duration
    assert [r.arrived for r in drv.records] == [2, 2, 2]
    for r in drv.records:
        total = r.time_compute + r.time_uplink + r.time_downlink + r.time_queue + r.time_wait
        assert total == pytest.approx(r.duration)
    stale = {(e.round, e.ue): e.staleness for evs in drv.events for e in evs}
    assert stale[(1, 1)] == 1 and stale[(2, 2)] == 2
    # local_update saw the version each UE was sent
    assert (0, 0, 0) in drv.updates and (1, 0, 1) in drv.updates and (1, 1, 1) in drv.updates
