"""The radio formulas against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.wireless.conftest import hand_airtime

from fedwave.channel import (
    Cell,
    airtime_s,
    db_to_linear,
    dbm_to_watt,
    linear_to_db,
    message_bits,
    noise_psd_w_per_hz,
    packet_error_probability,
    pathloss_db,
    sample_attempts,
    sample_fading_power,
    sample_positions,
    shannon_rate_bps,
    watt_to_dbm,
)
from fedwave.channel.fading import counter_fading_power
from fedwave.counter_rng import stream_key
from fedwave.rng import numpy_generator
from fedwave.sim import Clock, WirelessConfig
from fedwave.sim.config import PathLossConfig


def test_units_by_hand() -> None:
    assert float(dbm_to_watt(23.0)) == pytest.approx(0.19952623149688797)
    assert float(dbm_to_watt(30.0)) == pytest.approx(1.0)
    assert float(watt_to_dbm(0.001)) == pytest.approx(0.0)
    assert float(db_to_linear(3.0)) == pytest.approx(1.9952623149688795)
    assert float(linear_to_db(100.0)) == pytest.approx(20.0)
    # -174 dBm/Hz = 10^(-20.4) W/Hz; a 5 dB noise figure adds 5 dB.
    assert noise_psd_w_per_hz(-174.0) == pytest.approx(10 ** (-20.4))
    assert noise_psd_w_per_hz(-174.0, 5.0) == pytest.approx(10 ** (-19.9))


def test_pathloss_models_by_hand() -> None:
    p = PathLossConfig()
    assert float(pathloss_db("tr36814", 1000.0, p)) == pytest.approx(128.1)
    assert float(pathloss_db("tr36814", 100.0, p)) == pytest.approx(128.1 - 37.6)
    assert float(pathloss_db("tr36814", 250.0, p)) == pytest.approx(128.1 + 37.6 * math.log10(0.25))
    fs = PathLossConfig(model="free_space")
    expected = 20 * math.log10(4 * math.pi * 100.0 * 2.4e9 / 299_792_458.0)  # ~80.05 dB
    assert float(pathloss_db("free_space", 100.0, fs, 2.4e9)) == pytest.approx(expected)
    assert expected == pytest.approx(80.05, abs=0.01)
    pl = PathLossConfig(model="power_law", exponent=3.0, reference_distance_m=1.0, reference_loss_db=40.0)
    assert float(pathloss_db("power_law", 100.0, pl)) == pytest.approx(40.0 + 30.0 * 2)
    # the power-law defaults reproduce TR 36.814
    assert float(pathloss_db("power_law", 321.0, PathLossConfig(model="power_law"))) == pytest.approx(
        float(pathloss_db("tr36814", 321.0, p))
    )
    with pytest.raises(ValueError, match="unknown path-loss model"):
        pathloss_db("nope", 1.0, p)


def test_rate_and_airtime_by_hand() -> None:
    b, snr = 1e6, 15.0
    assert float(shannon_rate_bps(b, snr)) == pytest.approx(4e6)  # log2(16) = 4
    assert float(shannon_rate_bps(b, 10 * 15.0, gap_db=10.0)) == pytest.approx(4e6)
    assert message_bits(100, 40) == 8 * 140
    assert airtime_s(1120, 4e6) == pytest.approx(1120 / 4e6)
    assert airtime_s(1, 0.0) == math.inf


def test_packet_errors_and_attempts() -> None:
    assert float(packet_error_probability(10.0, 0.0)) == 0.0
    assert float(packet_error_probability(2.0, 1.0)) == pytest.approx(1 - math.exp(-0.5))
    assert float(packet_error_probability(1e-3, 1e9)) == 1.0
    rng = np.random.default_rng(0)
    assert sample_attempts(rng, 0.0, 3) == (1, True)
    assert sample_attempts(rng, 1.0, 3) == (4, False)
    assert sample_attempts(rng, 1.0, 0) == (1, False)
    # geometric: mean attempts of an uncapped q = 0.5 is 2
    draws = [sample_attempts(rng, 0.5, 1000)[0] for _ in range(4000)]
    assert np.mean(draws) == pytest.approx(2.0, rel=0.06)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_attempts_are_capped(q: float, max_retx: int, seed: int) -> None:
    attempts, delivered = sample_attempts(np.random.default_rng(seed), q, max_retx)
    assert 1 <= attempts <= 1 + max_retx
    assert delivered or attempts == 1 + max_retx


def test_positions_in_annulus_and_uniform_by_area() -> None:
    rng = np.random.default_rng(1)
    pos = sample_positions(rng, 20000, 500.0, 10.0)
    d = np.hypot(pos[:, 0], pos[:, 1])
    assert d.min() >= 10.0 and d.max() <= 500.0
    inner = (250.0**2 - 10.0**2) / (500.0**2 - 10.0**2)
    assert np.mean(d <= 250.0) == pytest.approx(inner, abs=0.015)


def test_fading_has_unit_mean_and_is_prefix_stable() -> None:
    for model, k in (("rayleigh", 0.0), ("rician", 5.0), ("none", 0.0)):
        x = sample_fading_power(np.random.default_rng(2), 40000, model, k)
        assert x.mean() == pytest.approx(1.0, rel=0.03)
        # the value of UE i does not depend on how many UEs are drawn
        y = sample_fading_power(np.random.default_rng(2), 7, model, k)
        assert np.array_equal(x[:7], y)
    rayleigh = sample_fading_power(np.random.default_rng(3), 5, "rayleigh")
    assert np.array_equal(rayleigh, np.random.default_rng(3).standard_exponential(5))


def test_cell_streams_and_shadowing() -> None:
    cfg = WirelessConfig()
    a = Cell.sample(cfg.cell, 50, seed=7)
    b = Cell.sample(cfg.cell, 50, seed=7)
    assert np.array_equal(a.positions_m, b.positions_m) and np.array_equal(a.shadowing_db, b.shadowing_db)
    expected = numpy_generator(7, "cell", "shadowing").normal(0.0, 8.0, 50)
    assert np.array_equal(a.shadowing_db, expected)
    assert a.shadowing_db.std() == pytest.approx(8.0, rel=0.3)


def _hand_rate(
    d_m: float, bandwidth_hz: float, shadow_db: float = 0.0, fading: float = 1.0
) -> tuple[float, float]:
    """(SNR linear, rate bit/s) of a 23 dBm UE at d_m under TR 36.814, N0 = -174 dBm/Hz."""
    pl = 128.1 + 37.6 * math.log10(d_m / 1000.0)
    g = 10 ** ((shadow_db - pl) / 10) * fading
    p = 10 ** ((23 - 30) / 10)
    n0 = 10 ** ((-174 - 30) / 10)
    snr = p * g / (n0 * bandwidth_hz)
    return snr, bandwidth_hz * math.log2(1 + snr)


def test_ue_at_known_distance_gets_the_formula_rate(fake_driver, make_quiet_cell) -> None:
    cfg = make_quiet_cell([(200.0, 0.0), (0.0, -400.0)], access__header_bytes=40)
    drv = fake_driver(payload=5000, samples=0)
    Clock(cfg, 2, 1e6, seed=0).run(drv, 1, 2)
    ev = {e.ue: e for e in drv.events[0]}
    for ue, d in ((0, 200.0), (1, 400.0)):
        snr, rate = _hand_rate(d, 10e6)  # FDMA: 20 MHz shared by the 2 uploading UEs
        assert ev[ue].rate_up_bps == pytest.approx(rate, rel=1e-12)
        assert ev[ue].snr_up_db == pytest.approx(10 * math.log10(snr), rel=1e-12)
        assert ev[ue].t_upload_end - ev[ue].t_upload_start == pytest.approx(8 * (5000 + 40) / rate)
        assert ev[ue].attempts == 1 and ev[ue].bytes_up == 5000


def test_known_shadowing_and_per_block_fading_give_the_airtime(fake_driver) -> None:
    cfg = WirelessConfig.model_validate(
        {"cell": {"positions_m": [[300.0, 0.0]], "shadowing_db": 8.0, "fading": {"coherence_time_s": 0.002}}}
    )
    seed = 11
    drv = fake_driver(payload=100_000, samples=0)
    Clock(cfg, 1, 1e6, seed=seed).run(drv, 2, 1)
    shadow = float(numpy_generator(seed, "cell", "shadowing").normal(0.0, 8.0, 1)[0])
    snr, _ = _hand_rate(300.0, 20e6, shadow)
    for rnd in (0, 1):
        key = stream_key(seed, "fading", "up", rnd, 0)
        fades = counter_fading_power(key, np.arange(2000), "rayleigh").tolist()
        ev = drv.events[rnd][0]
        air = hand_airtime(8 * (100_000 + 40), snr, 20e6, 0.002, fades)
        assert ev.t_upload_end - ev.t_upload_start == pytest.approx(air, rel=1e-12)
        assert air > 0.004  # the upload spans several blocks
        assert ev.snr_up_db == pytest.approx(10 * math.log10(snr), rel=1e-12)  # the mean SNR


def test_gap_to_capacity(fake_driver, make_quiet_cell) -> None:
    cfg = make_quiet_cell([(150.0, 0.0)], access__gap_db=3.0)
    drv = fake_driver(samples=0)
    Clock(cfg, 1, 1e6, seed=0).run(drv, 1, 1)
    snr, _ = _hand_rate(150.0, 20e6)
    assert drv.events[0][0].rate_up_bps == pytest.approx(20e6 * math.log2(1 + snr / 10**0.3), rel=1e-12)
