"""FDMA, TDMA and the downlink on hand-built scenarios (no shadowing, no fading)."""

from __future__ import annotations

import math

import pytest

from fedwave.sim import Clock

POS = [(100.0, 0.0), (0.0, 250.0), (-400.0, 0.0)]
PAYLOAD, HEADER, BCAST = 20_000, 40, 50_000
N0 = 10 ** ((-174 - 30) / 10)
P_UE, P_BS = 10 ** ((23 - 30) / 10), 10 ** ((43 - 30) / 10)


def gain(d: float) -> float:
    return 10 ** (-(128.1 + 37.6 * math.log10(d / 1000.0)) / 10)


def rate(p: float, d: float, b: float) -> float:
    return b * math.log2(1 + p * gain(d) / (N0 * b))


DIST = [math.hypot(*p) for p in POS]


def run(make_quiet_cell, fake_driver, samples=1000, **overrides):
    cfg = make_quiet_cell(POS, access__header_bytes=HEADER, **overrides)
    drv = fake_driver(payload=PAYLOAD, samples=samples, broadcast=BCAST)
    clock = Clock(cfg, 3, flops_per_sample=1e6, seed=0)  # 1000 samples at 1e9 FLOP/s: 1 s
    clock.run(drv, 1, 3)
    return drv.records[0], {e.ue: e for e in drv.events[0]}


def test_fdma_upload_phase_is_the_max_on_a_third_of_the_band(make_quiet_cell, fake_driver) -> None:
    rec, ev = run(make_quiet_cell, fake_driver)
    air = [8 * (PAYLOAD + HEADER) / rate(P_UE, d, 20e6 / 3) for d in DIST]
    bcast = 8 * (BCAST + HEADER) / min(rate(P_BS, d, 20e6) for d in DIST)
    for ue in range(3):
        assert ev[ue].t_download_end == pytest.approx(bcast)
        assert ev[ue].t_compute_end - ev[ue].t_compute_start == pytest.approx(1.0)
        assert ev[ue].t_upload_start == ev[ue].t_compute_end  # no wait under FDMA
        assert ev[ue].t_upload_end - ev[ue].t_upload_start == pytest.approx(air[ue])
    assert rec.duration == pytest.approx(bcast + 1.0 + max(air))
    assert rec.time_uplink == pytest.approx(max(air))
    assert rec.time_downlink == pytest.approx(bcast)
    assert rec.time_compute == pytest.approx(1.0)
    assert rec.time_wait == pytest.approx(0.0, abs=1e-12) and rec.time_queue == 0.0
    assert rec.bytes_up == 3 * PAYLOAD and rec.bytes_down == BCAST


def test_tdma_upload_phase_is_the_sum_in_ue_order(make_quiet_cell, fake_driver) -> None:
    rec, ev = run(make_quiet_cell, fake_driver, access__scheme="tdma")
    air = [8 * (PAYLOAD + HEADER) / rate(P_UE, d, 20e6) for d in DIST]
    t_ready = ev[0].t_compute_end
    # All three finish computing at once: served by UE id, back to back on the whole band.
    assert ev[0].t_upload_start == pytest.approx(t_ready)
    assert ev[1].t_upload_start == pytest.approx(t_ready + air[0])
    assert ev[2].t_upload_start == pytest.approx(t_ready + air[0] + air[1])
    assert ev[2].t_upload_end - t_ready == pytest.approx(sum(air))
    assert rec.t_end - t_ready == pytest.approx(sum(air))
    # critical path: UE 2 queued for the channel while the two others sent: queueing, not idle waiting
    assert rec.time_uplink == pytest.approx(air[2])
    assert rec.time_queue == pytest.approx(air[0] + air[1])
    assert rec.time_wait == pytest.approx(0.0, abs=1e-12)
    total = rec.time_compute + rec.time_uplink + rec.time_downlink + rec.time_queue + rec.time_wait
    assert total == pytest.approx(rec.duration)


def test_tdma_serves_in_order_of_arrival_at_the_channel(make_quiet_cell, fake_driver) -> None:
    # UE 2 finishes computing first (0.5 s), then UE 0 (1 s), then UE 1 (1.5 s).
    samples = {0: 1000, 1: 1500, 2: 500}
    _, ev = run(make_quiet_cell, fake_driver, samples=lambda r, ue: samples[ue], access__scheme="tdma")
    order = sorted(ev, key=lambda ue: ev[ue].t_upload_start)
    assert order == [2, 0, 1]
    air0 = 8 * (PAYLOAD + HEADER) / rate(P_UE, DIST[0], 20e6)
    assert ev[0].t_upload_end - ev[0].t_upload_start == pytest.approx(air0)


def test_unicast_downlink_is_sequential_by_ue_id(make_quiet_cell, fake_driver) -> None:
    rec, ev = run(make_quiet_cell, fake_driver, downlink__mode="unicast")
    dl = [8 * (BCAST + HEADER) / rate(P_BS, d, 20e6) for d in DIST]
    assert ev[0].t_download_start == 0.0
    assert ev[0].t_download_end == pytest.approx(dl[0])
    assert ev[1].t_download_start == pytest.approx(dl[0])
    assert ev[2].t_download_end == pytest.approx(sum(dl))
    assert rec.bytes_down == 3 * BCAST
    # the critical UE (UE 2, farthest) queued for its unicast turn while UEs 0 and 1 received theirs
    assert rec.time_queue == pytest.approx(dl[0] + dl[1])


def test_fdma_shares_split_the_band(make_quiet_cell, fake_driver) -> None:
    _, ev = run(make_quiet_cell, fake_driver, access__shares=[1.0, 1.0, 2.0])
    for ue, share in ((0, 0.25), (1, 0.25), (2, 0.5)):
        assert ev[ue].rate_up_bps == pytest.approx(rate(P_UE, DIST[ue], 20e6 * share))


def test_time_split_sums_to_duration_and_ratio_is_recorded(make_quiet_cell, fake_driver) -> None:
    for overrides in ({}, {"access__scheme": "tdma"}, {"downlink__mode": "unicast"}):
        rec, ev = run(make_quiet_cell, fake_driver, **overrides)
        parts = rec.time_compute + rec.time_uplink + rec.time_downlink + rec.time_queue + rec.time_wait
        assert parts == pytest.approx(rec.duration, rel=1e-12)
        up = sum(e.t_upload_end - e.t_upload_start for e in ev.values()) / 3
        cp = sum(e.t_compute_end - e.t_compute_start for e in ev.values()) / 3
        assert rec.extra["uplink_compute_ratio"] == pytest.approx(up / cp, rel=1e-12)
        assert rec.energy_j == pytest.approx(sum(e.energy_compute_j + e.energy_radio_j for e in ev.values()))


def test_fifo_channel_breaks_ties_by_ue_id_not_by_host_order() -> None:
    import simpy

    from fedwave.sim.fifo import FifoChannel

    env = simpy.Environment()
    channel = FifoChannel(env)
    served: list[tuple[float, int]] = []

    def tx(ue: int, ready: float, airtime: float):
        yield env.timeout(ready)
        done = yield channel.request(ue)
        served.append((env.now, ue))
        yield env.timeout(airtime)
        done.succeed()

    # Processes are created (so run by SimPy) in the order listed. 7 and 3 queue behind 5 at t = 1;
    # 9 and 4 find the channel free at t = 10, at the same instant: the lower id goes first.
    for ue, ready in ((7, 1.0), (3, 1.0), (5, 0.5), (9, 10.0), (4, 10.0)):
        env.process(tx(ue, ready, 2.0))
    env.run()
    assert served == [(0.5, 5), (2.5, 3), (4.5, 7), (10.0, 4), (12.0, 9)]
