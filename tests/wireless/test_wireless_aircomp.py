"""Over-the-air computation (issue 14, item 1): the physics and the round's timeline on the clock.

Statistical tolerances: a sample variance of d i.i.d. Gaussian errors has relative std sqrt(2 / (d - 1));
a flip rate over d coordinates has std sqrt(p (1 - p) / d). Bounds are 5 of those stds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from fedwave.channel.aircomp import (
    aggregate_analog,
    aggregate_one_bit,
    analog_airtime_s,
    truncated_inversion,
)
from fedwave.errors import FedwaveError
from fedwave.rng import numpy_generator
from fedwave.sim import Clock, WirelessConfig
from fedwave.sim.aircomp import CONTROL_TAG

FLOPS = 7.35e6


def _updates(k: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = rng.normal(0.01, 0.05, (k, d)) * rng.uniform(0.5, 2.0, (k, 1)) + rng.normal(0, 0.01, (k, 1))
    n = rng.integers(10, 100, k).astype(float)
    return u, n / n.sum()


# ------------------------------------------------------------------------------------------- physics


def test_truncated_inversion_aligns_every_active_ue_at_the_weakest_ones_power() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.1, 0.3, 40)
    g = 10 ** rng.uniform(-13, -9, 40)
    x = rng.standard_exponential(40)
    inv = truncated_inversion(p, g, x, 0.4)
    assert np.array_equal(inv.active, x >= 0.4)
    assert inv.rho0_w == pytest.approx(np.min((p * g * x)[x >= 0.4]), rel=1e-12)
    received = inv.tx_power_w * g * x
    assert np.allclose(received[inv.active], inv.rho0_w, rtol=1e-12)
    assert np.all(inv.tx_power_w[~inv.active] == 0.0)
    assert np.all(inv.tx_power_w <= p * (1 + 1e-12))
    assert np.isclose(inv.tx_power_w, p, rtol=1e-12).sum() == 1  # the weakest active UE at full power


def test_analog_sum_without_noise_is_the_weighted_mean() -> None:
    u, w = _updates(9, 5001)
    out = aggregate_analog(u, w, 3e-14, 0.0, np.random.default_rng(0))
    assert np.allclose(out.estimate, w @ u, rtol=0, atol=1e-14)
    assert out.noise_std == 0.0


@pytest.mark.parametrize("k", [1, 4, 25])
def test_analog_error_variance_is_s2_n0w_over_rho0_k2(k: int) -> None:
    d = 200_001
    u, w = _updates(k, d, seed=k)
    rho0, noise = 2e-14, 8e-14  # received SNR per UE -6 dB
    out = aggregate_analog(u, w, rho0, noise, numpy_generator(5, "t", k))
    err = out.estimate - w @ u
    s2 = np.var((k * w)[:, None] * u)  # variance of all scaled entries, computed here
    expected = s2 * noise / rho0 / k**2
    assert abs(np.var(err) / expected - 1) < 5 * math.sqrt(2 / (d - 1))
    assert abs(err.mean()) < 5 * math.sqrt(expected / d)
    assert out.noise_std == pytest.approx(math.sqrt(expected), rel=1e-9)


def test_analog_airtime_carries_two_entries_per_symbol() -> None:
    assert [analog_airtime_s(d, 1e6) for d in (1, 2, 3, 10, 10_001)] == [1e-6, 1e-6, 2e-6, 5e-6, 5001e-6]


def test_one_bit_without_noise_is_the_scaled_majority_vote() -> None:
    u, w = _updates(6, 4000, seed=2)  # even K: ties give 0
    out = aggregate_one_bit(u, w, 1e-13, 0.0, np.random.default_rng(0))
    scale = float(sum(wk * np.abs(uk).mean() for wk, uk in zip(w, u)))
    expected = scale * np.sign(np.sign(u).sum(axis=0))
    assert np.array_equal(out.estimate, expected)
    assert (expected == 0).any() and out.flip_rate == 0.0


def test_one_bit_flip_rate_follows_the_gaussian_tail() -> None:
    k, d = 5, 200_000
    u, w = _updates(k, d, seed=4)
    rho0, noise = 1e-14, 4e-14  # sqrt(rho0 / N0W) = 0.5
    out = aggregate_one_bit(u, w, rho0, noise, numpy_generator(1, "flip"))
    s = np.abs(np.sign(u).sum(axis=0))
    p = float(norm.sf(s * math.sqrt(rho0 / noise)).mean())
    assert 0.05 < p < 0.45
    assert abs(out.flip_rate - p) < 5 * math.sqrt(p * (1 - p) / d)


# ---------------------------------------------------------------------------------- clock timeline


def _cfg(scheme: str = "aircomp", **aircomp: object) -> WirelessConfig:
    return WirelessConfig.model_validate({"access": {"scheme": scheme, "aircomp": aircomp}})


def _one_round(fake_driver, cfg: WirelessConfig, n: int, payload: int = 400_000, seed: int = 3):
    drv = fake_driver(payload=payload, samples=50)
    clock = Clock(cfg, n, FLOPS, seed)
    clock.run(drv, 1, n)
    return clock, drv.records[0], drv.events[0]


def test_analog_airtime_is_constant_in_the_number_of_ues_while_fdma_grows(fake_driver) -> None:
    analog, air_up, fdma_up = [], [], []
    for n in (10, 20, 50, 100):
        _, rec, _ = _one_round(fake_driver, _cfg(), n)
        analog.append(rec.extra["aircomp_analog_s"])
        air_up.append(rec.time_uplink)
        fdma_up.append(_one_round(fake_driver, _cfg("fdma"), n)[1].time_uplink)
    assert analog == [50_000 / 20e6] * 4  # ceil(d/2) / W, d = 400 kB / 4 B = 100 000 entries
    assert fdma_up[-1] > 5 * fdma_up[0]
    assert max(air_up) < 2 * min(air_up)  # only the tiny control messages grow with the UEs
    assert fdma_up[1] / air_up[1] > 10 and fdma_up[3] / air_up[3] > 50


def test_truncated_ues_are_silent_and_energy_is_power_times_airtime(fake_driver) -> None:
    cfg = _cfg(truncation_fading_power=0.5)
    n = 30
    clock, rec, events = _one_round(fake_driver, cfg, n)
    x = np.array([numpy_generator(3, "fading", "up", 0, ue).standard_exponential(1)[0] for ue in range(n)])
    truncated = {ue for ue in range(n) if x[ue] < 0.5}
    assert 0 < len(truncated) < n
    status = {e.ue: e.status for e in events}
    assert {ue for ue, s in status.items() if s == "truncated"} == truncated
    assert rec.arrived == n - len(truncated) == rec.extra["aircomp_active"]
    p, g = clock.cell.ue_power_w, clock.large_scale_gain_at(0.0, range(n))
    active = np.array([ue not in truncated for ue in range(n)])
    rho0 = float(np.min((p * g * x)[active]))
    noise = clock.cell.noise_psd_w_hz * 20e6
    assert rec.extra["aircomp_rx_snr_db"] == pytest.approx(10 * math.log10(rho0 / noise), rel=1e-9)
    a = 50_000 / 20e6  # 100 000 entries, two per symbol
    assert rec.extra["aircomp_analog_s"] == a
    band = 20e6 / active.sum()
    for e in events:
        if e.ue in truncated:
            assert e.bytes_up == 0 and e.energy_radio_j == 0.0 and e.t_upload_end == e.t_compute_end
            continue
        control = clock.transmit(e.ue, band, 12, (0, e.ue, CONTROL_TAG)).airtime_s
        expected = p[e.ue] * control + rho0 / (g[e.ue] * x[e.ue]) * a
        assert e.energy_radio_j == pytest.approx(expected, rel=1e-9)
        assert e.bytes_up == 12 and e.t_upload_end == rec.t_end
    assert rec.bytes_up == 12 * active.sum()
    total = rec.time_compute + rec.time_uplink + rec.time_downlink + rec.time_queue + rec.time_wait
    assert total == pytest.approx(rec.duration, rel=1e-12)


def test_deadline_keeps_out_the_ues_still_computing(fake_driver) -> None:
    data = {
        "access": {"scheme": "aircomp"},
        "devices": {"profile": "distribution"},
        "policy": {"name": "deadline", "deadline_s": 0.0},
    }
    cfg = WirelessConfig.model_validate({**data, "policy": {"name": "sync"}})
    _, _, events = _one_round(fake_driver, cfg, 20)
    ends = sorted(e.t_compute_end for e in events)
    cut = (ends[9] + ends[10]) / 2  # half the UEs finish computing before it
    data["policy"]["deadline_s"] = cut
    drv = fake_driver(payload=400_000, samples=50)
    Clock(WirelessConfig.model_validate(data), 20, FLOPS, 3).run(drv, 1, 20)
    late = {e.ue for e in events if e.t_compute_end > cut}
    got = {e.ue: e.status for e in drv.events[0]}
    assert {u for u, s in got.items() if s == "dropped"} == late and len(late) == 10
    assert sorted(a.ue for a in drv.aggregations[0][1]) == sorted(set(range(20)) - late)
    assert drv.records[0].t_end > cut  # control, feedback and analog phase after the deadline


def test_an_analog_phase_longer_than_the_coherence_block_is_refused(fake_driver) -> None:
    cfg = WirelessConfig.model_validate(
        {"access": {"scheme": "aircomp"}, "cell": {"fading": {"coherence_time_s": 1e-3}}}
    )
    with pytest.raises(FedwaveError, match="longer than the coherence block"):
        _one_round(fake_driver, cfg, 5)
    ok = WirelessConfig.model_validate(
        {"access": {"scheme": "aircomp"}, "cell": {"fading": {"coherence_time_s": 1e-3, "block": "round"}}}
    )
    assert _one_round(fake_driver, ok, 5)[1].extra["aircomp_analog_s"] > 1e-3


def test_a_lost_control_message_keeps_the_ue_out_of_the_analog_sum(fake_driver) -> None:
    cfg = WirelessConfig.model_validate(
        {
            "access": {"scheme": "aircomp", "max_retransmissions": 0},
            "cell": {"fading": {"block": "round", "outage_snr_db": 30.0}},
        }
    )
    drv = fake_driver(payload=400_000, samples=50)
    clock = Clock(cfg, 20, FLOPS, 3)
    clock.run(drv, 1, 20)
    events = drv.events[0]
    lost = {e.ue for e in events if e.status == "lost"}
    arrived = {e.ue for e in events if e.status == "arrived"}
    assert lost and arrived and lost | arrived == set(range(20))
    assert {a.ue for a in drv.aggregations[0][1]} == arrived
    assert drv.discarded == [("lost", [("h", 0, ue, ue + 1) for ue in sorted(lost)])]
    x = np.array([numpy_generator(3, "fading", "up", 0, ue).standard_exponential(1)[0] for ue in range(20)])
    p, g = clock.cell.ue_power_w, clock.large_scale_gain_at(0.0, range(20))
    rho0 = min(p[u] * g[u] * x[u] for u in arrived)  # the lost UEs do not set the aligned power
    snr = rho0 / (clock.cell.noise_psd_w_hz * 20e6)
    assert drv.records[0].extra["aircomp_rx_snr_db"] == pytest.approx(10 * math.log10(snr), rel=1e-9)
    for e in events:
        if e.ue in lost:
            assert e.t_upload_end < drv.records[0].t_end and e.energy_radio_j == pytest.approx(
                p[e.ue] * (e.t_upload_end - e.t_upload_start), rel=1e-9
            )
