"""Random-waypoint mobility: UEs stay in the annulus, walk at the configured speed, and their path loss
and shadowing follow them (Gudmundson correlation over the distance walked)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedwave.channel.mobility import RandomWaypoint, segment_min_distance
from fedwave.config import load_config
from fedwave.errors import ConfigError
from fedwave.sim import Clock, WirelessConfig


def _clock(ues: int = 40, pause_s: float = 0.0, speed_kmh: float = 36.0, shadowing_db: float = 8.0) -> Clock:
    cfg = WirelessConfig.model_validate(
        {
            "cell": {
                "fading": {"ue_speed_kmh": speed_kmh},
                "mobility": {"model": "random_waypoint", "pause_s": pause_s},
                "radius_m": 300.0,
                "d_min_m": 20.0,
                "shadowing_db": shadowing_db,
            }
        }
    )
    return Clock(cfg, ues, 1e6, 9)


def test_positions_stay_in_the_annulus_and_start_where_placed() -> None:
    clock = _clock()
    assert np.array_equal(clock.distance_at(0.0), clock.cell.distance_m)
    d = np.array([clock.distance_at(t) for t in np.linspace(0.0, 600.0, 601)])  # ~ 20 legs per UE
    assert d.min() >= 20.0 - 1e-9 and d.max() <= 300.0 + 1e-9
    assert d.min() < 40.0 and d.max() > 280.0  # they do go near both edges
    assert np.ptp(d, axis=0).min() > 50.0  # every UE moved


def test_the_ue_walks_at_the_configured_speed() -> None:
    clock = _clock(ues=10, speed_kmh=36.0)  # 10 m/s: the one speed of the config
    mob = clock.mobility
    assert mob is not None and mob.speed_mps == pytest.approx(10.0)
    for ue in range(10):
        prev, _ = mob.state_at(ue, 0.0)
        for t in np.arange(0.05, 120.0, 0.05):
            pos, walked = mob.state_at(ue, float(t))
            assert walked == pytest.approx(10.0 * t, rel=1e-9)  # no pause: the distance walked is v t
            step = float(np.hypot(*(pos - prev)))
            assert step <= 10.0 * 0.05 * (1 + 1e-9)  # a straight step never beats the speed
            prev = pos
        # each leg: its length over its duration is the speed
        w = mob._walks[ue]
        for i in range(len(w.arrive)):
            length = float(np.hypot(*(w.points[i + 1] - w.points[i])))
            assert length / (w.arrive[i] - w.depart[i]) == pytest.approx(10.0, rel=1e-12)
            assert segment_min_distance(w.points[i], w.points[i + 1]) >= 20.0


def test_pauses_hold_the_ue_still() -> None:
    mob = _clock(ues=3, pause_s=5.0).mobility
    assert mob is not None
    mob.state_at(0, 200.0)
    w = mob._walks[0]
    for i in range(len(w.arrive) - 1):
        a, b = w.arrive[i], w.depart[i + 1]
        assert b - a == pytest.approx(5.0)
        p1, s1 = mob.state_at(0, a + 0.1)
        p2, s2 = mob.state_at(0, b - 0.1)
        assert np.allclose(p1, p2, atol=1e-9) and s1 == s2
    assert mob.state_at(0, 200.0)[1] < 10.0 * 200.0


def test_path_loss_follows_the_distance() -> None:
    clock = _clock(shadowing_db=0.0)
    for t in (0.0, 17.3, 250.0):
        d = clock.distance_at(t)
        expected = 10 ** (-(128.1 + 37.6 * np.log10(d / 1000.0)) / 10)  # TR 36.814 at the distance then
        assert np.allclose(clock.large_scale_gain_at(t), expected, rtol=1e-12)
    assert not np.allclose(clock.large_scale_gain_at(0.0), clock.large_scale_gain_at(250.0))


def test_shadowing_decorrelates_with_distance_walked() -> None:
    n, sigma, d_corr = 3000, 8.0, 50.0
    start = np.tile([[100.0, 0.0]], (n, 1))
    shadow0 = np.random.default_rng(1).normal(0.0, sigma, n)
    mob = RandomWaypoint(start, 300.0, 10.0, 1.0, 0.0, shadow0, sigma, d_corr, seed=3)
    for lag in (d_corr, 2 * d_corr):
        later = np.array([mob.shadowing_db(ue, lag) for ue in range(n)])
        r = float(np.corrcoef(shadow0, later)[0, 1])
        target = math.exp(-lag / d_corr)
        assert abs(r - target) < 4 * (1 - target**2) / math.sqrt(n)
        assert np.std(later) == pytest.approx(sigma, rel=4 / math.sqrt(2 * n))
    assert all(mob.shadowing_db(ue, 0.0) == shadow0[ue] for ue in range(5))  # unmoved: the static draw


def test_a_transmission_uses_the_gain_at_its_start() -> None:
    clock = _clock(ues=2, shadowing_db=0.0)
    t = 42.0
    snr = clock.mean_snr_up(1, 1e6, t)
    gain = float(clock.large_scale_gain_at(t, [1])[0])
    n0 = clock.cell.noise_psd_w_hz
    assert snr == pytest.approx(clock.cell.ue_power_w[1] * gain / (n0 * 1e6), rel=1e-12)
    assert snr != pytest.approx(clock.mean_snr_up(1, 1e6, 0.0), rel=1e-3)


def test_mobility_config_is_validated() -> None:
    cfg = load_config(None, ["wireless.cell.mobility=random_waypoint"])
    assert cfg.wireless.cell.mobility.model == "random_waypoint"
    with pytest.raises(ConfigError, match="d_min_m"):
        load_config(
            None,
            [
                "wireless.cell.mobility=random_waypoint",
                "wireless.cell.radius_m=30",
                "wireless.cell.d_min_m=20",
            ],
        )
    with pytest.raises(ConfigError, match="decorrelation_m"):
        load_config(None, ["wireless.cell.mobility.decorrelation_m=0"])
    with pytest.raises(ConfigError, match="pause_s"):
        load_config(None, ["wireless.cell.mobility.pause_s=-1"])
    with pytest.raises(ConfigError, match="model"):
        load_config(None, ["wireless.cell.mobility=teleport"])


def test_the_timeline_records_the_snr_at_each_upload_start(fake_driver) -> None:
    cfg = WirelessConfig.model_validate(
        {
            "cell": {"fading": {"ue_speed_kmh": 72.0}, "mobility": "random_waypoint"},
            "access": {"scheme": "tdma"},
        }
    )
    clock = Clock(cfg, 8, 7.35e6, 5)
    drv = fake_driver(payload=200_000, samples=200)
    clock.run(drv, 3, 8)
    w, n0 = cfg.access.bandwidth_hz, clock.cell.noise_psd_w_hz
    starts = set()
    for ev in (e for evs in drv.events for e in evs):
        assert ev.status == "arrived"
        g = float(clock.large_scale_gain_at(ev.t_upload_start, [ev.ue])[0])
        assert ev.snr_up_db == pytest.approx(
            10 * math.log10(clock.cell.ue_power_w[ev.ue] * g / (n0 * w)), abs=1e-9
        )
        starts.add(ev.t_upload_start)
    assert len(starts) == 24  # TDMA: every upload starts at its own time
