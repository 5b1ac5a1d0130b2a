"""Config validation (errors name the field), the event trigger, and the cell description."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from fedwave.errors import ConfigError
from fedwave.sim import Clock, WirelessConfig, describe_cell, format_cell, should_upload


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"cell": {"d_min_m": 600.0}}, ["d_min_m", "radius_m"]),
        ({"cell": {"positions_m": [[1.0, 2.0]]}}, ["positions_m[0]", "d_min_m"]),
        ({"cell": {"pathloss": {"model": "okumura"}}}, ["model", "okumura", "tr36814"]),
        ({"cell": {"shadowing_db": -1.0}}, ["shadowing_db"]),
        ({"cell": {"ue_power_dbm": [23.0, 99.0]}}, ["ue_power_dbm"]),
        ({"access": {"bandwidth_hz": 0}}, ["bandwidth_hz"]),
        ({"access": {"bandwith_hz": 1e6}}, ["bandwith_hz"]),
        ({"access": {"shares": [1.0, -1.0]}}, ["shares"]),
        ({"access": {"scheme": "tdma", "shares": [1.0]}}, ["access.shares", "fdma"]),
        ({"access": {"max_retransmissions": -1}}, ["max_retransmissions"]),
        ({"policy": {"name": "deadline"}}, ["deadline_s"]),
        ({"policy": {"name": "first_k"}}, ["policy.k"]),
        ({"policy": {"name": "fedbuff"}}, ["name", "fedbuff"]),
        ({"policy": {"name": "async"}, "access": {"shares": [1.0]}}, ["access.shares", "async"]),
        ({"devices": {"profile": "classes"}}, ["devices.classes"]),
        (
            {"devices": {"profile": "classes", "classes": [{"name": "a", "share": 0.5}]}},
            ["shares sum", "0.5"],
        ),
        ({"devices": {"distribution": {"kind": "uniform"}}}, ["low", "high"]),
        ({"event_trigger": {"mode": "sometimes"}}, ["mode"]),
    ],
)
def test_validation_errors_name_the_field(data: dict, names: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        WirelessConfig.model_validate(data)
    text = str(info.value)
    for name in names:
        assert name in text


def test_defaults_are_the_spec_defaults() -> None:
    cfg = WirelessConfig()
    assert (cfg.cell.radius_m, cfg.cell.d_min_m, cfg.cell.shadowing_db) == (500.0, 10.0, 8.0)
    assert (cfg.cell.fading.model, cfg.cell.noise_psd_dbm_hz, cfg.cell.ue_power_dbm) == (
        "rayleigh",
        -174.0,
        23.0,
    )
    assert (cfg.cell.fading.block, cfg.cell.fading.ue_speed_kmh, cfg.cell.carrier_hz) == (
        "coherence",
        3.0,
        2e9,
    )
    assert (cfg.cell.bs_power_dbm, cfg.cell.pathloss.model) == (43.0, "tr36814")
    assert (cfg.access.scheme, cfg.access.bandwidth_hz) == ("fdma", 20e6)
    assert (cfg.policy.name, cfg.downlink.mode, cfg.devices.kappa) == ("sync", "broadcast", 1e-28)
    for section in (cfg.cell, cfg.cell.fading, cfg.access, cfg.devices, cfg.policy, cfg.event_trigger):
        for name, field in type(section).model_fields.items():
            assert field.description, f"{type(section).__name__}.{name} has no description"


def test_per_ue_lists_are_checked_against_the_number_of_ues() -> None:
    with pytest.raises(ConfigError, match=r"cell\.positions_m"):
        Clock(WirelessConfig.model_validate({"cell": {"positions_m": [[100.0, 0.0]]}}), 2, 1.0, 0)
    with pytest.raises(ConfigError, match=r"cell\.ue_power_dbm"):
        Clock(WirelessConfig.model_validate({"cell": {"ue_power_dbm": [20.0, 23.0]}}), 3, 1.0, 0)
    with pytest.raises(ConfigError, match=r"access\.shares"):
        Clock(WirelessConfig.model_validate({"access": {"shares": [1.0]}}), 3, 1.0, 0)
    with pytest.raises(ConfigError, match="concurrency"):
        cfg = WirelessConfig.model_validate({"policy": {"name": "async", "concurrency": 9}})
        Clock(cfg, 3, 1.0, 0).run(None, 1, 2)  # type: ignore[arg-type]


def test_should_upload() -> None:
    assert should_upload(0.2, 10.0, 0.1, "absolute")
    assert not should_upload(0.1, 10.0, 0.1, "absolute")
    assert not should_upload(0.5, 10.0, 0.1, "relative")  # 0.5 <= 0.1 * 10
    assert should_upload(1.5, 10.0, 0.1, "relative")
    assert should_upload(math.nan, 1.0, 0.1, "relative")
    with pytest.raises(ValueError):
        should_upload(1.0, 1.0, 0.1, "sometimes")


def test_describe_cell_by_hand() -> None:
    cfg = WirelessConfig.model_validate({"cell": {"positions_m": [[300.0, 400.0], [0.0, 100.0]]}})
    clock = Clock(cfg, 2, 7e6, seed=3)
    rows = describe_cell(clock, 212_000, [72, 36])
    r = rows[0]
    pl = 128.1 + 37.6 * math.log10(0.5)
    assert r.distance_m == pytest.approx(500.0) and r.pathloss_db == pytest.approx(pl)
    snr = 10 ** ((23 - 30 + r.shadowing_db - pl) / 10) / (10 ** ((-174 - 30) / 10) * 10e6)
    assert r.mean_snr_db == pytest.approx(10 * math.log10(snr))
    assert r.bandwidth_hz == 10e6 and r.rate_bps == pytest.approx(10e6 * math.log2(1 + snr))
    assert r.upload_s == pytest.approx(8 * 212_040 / r.rate_bps)
    assert r.compute_s == pytest.approx(72 * 7e6 / 1e9) and rows[1].compute_s == pytest.approx(36 * 7e-3)
    text = format_cell(rows)
    assert "upload s" in text and "mean upload / mean compute" in text and len(text.splitlines()) == 6


def test_describe_cell_under_aircomp_gives_the_analog_phase_on_the_whole_band() -> None:
    cfg = WirelessConfig.model_validate({"access": {"scheme": "aircomp"}})
    for n in (2, 9):  # the analog phase does not grow with the UEs
        rows = describe_cell(Clock(cfg, n, 7e6, seed=3), 212_000, [72] * n, entries=53_001)
        assert [r.upload_s for r in rows] == pytest.approx([26_501 / 20e6] * n)
        assert all(r.bandwidth_hz == 20e6 and math.isnan(r.rate_bps) for r in rows)
    with pytest.raises(ValueError, match="entries"):
        describe_cell(Clock(cfg, 2, 7e6, seed=3), 212_000, [72, 72])


def test_a_ue_at_the_bs_is_refused_before_any_round() -> None:
    # 4 UEs 1 mm from the BS (path loss -97.5 dB on tr36814). The uplink limit is 330 dB on a quarter of
    # the band, 324.0 dB on the full band; the downlink's is 330 dB on the full band. Noise 101 dB below
    # thermal puts the uplink at 322.5 dB (BS at -50 dBm: downlink 249.5), 103 dB below at 324.5 dB;
    # a BS of 80 dBm gives a downlink of 329.5 dB 51 dB below thermal and 330.5 dB 52 dB below.
    def cell(d_m: float, bs_dbm: float, below_thermal_db: float = 0.0) -> WirelessConfig:
        return WirelessConfig.model_validate(
            {
                "cell": {
                    "positions_m": [[d_m, 0.0]] * 4,
                    "d_min_m": d_m,
                    "shadowing_db": 0.0,
                    "bs_power_dbm": bs_dbm,
                    "noise_psd_dbm_hz": -174.0 - below_thermal_db,
                }
            }
        )

    Clock(cell(1e-3, -50.0, 101.0), 4, 1.0, 0)
    with pytest.raises(ConfigError, match=r"UE 0 .* mean uplink SNR of 324\.5 dB.*its 0\.25 share"):
        Clock(cell(1e-3, -50.0, 103.0), 4, 1.0, 0)
    Clock(cell(1e-3, 80.0, 51.0), 4, 1.0, 0)
    with pytest.raises(ConfigError, match=r"mean downlink SNR of 330\.5 dB.*330 dB.*full band.*bs_power_dbm"):
        Clock(cell(1e-3, 80.0, 52.0), 4, 1.0, 0)
    with pytest.raises(ConfigError, match="uplink SNR that is infinite"):
        Clock(cell(1e-310, 43.0), 4, 1.0, 0)
    with pytest.raises(ValidationError, match="less than or equal to 80"):
        cell(1.0, 81.0)


def test_the_snr_check_uses_each_ues_narrowest_band() -> None:
    # noise at -400 dBm/Hz (a noise-free channel): full-band SNRs up to about 305 dB, accepted with an
    # equal split among 6 or a TDMA cell of 100; an access.shares entry of 1e-12 puts UE 0's band 120 dB
    # lower, which the check refuses before any round (a mid-run ValueError otherwise)
    def quiet(**access: object) -> WirelessConfig:
        return WirelessConfig.model_validate({"cell": {"noise_psd_dbm_hz": -400.0}, "access": access})

    for seed in range(20):
        Clock(quiet(), 6, 1.0, seed)
        Clock(quiet(scheme="tdma"), 100, 1.0, seed)
    with pytest.raises(ConfigError, match=r"UE 0 .* mean uplink SNR of 2\d\d\.\d dB.*its 2e-13 share"):
        Clock(quiet(shares=[1e-12, 1.0, 1.0, 1.0, 1.0, 1.0]), 6, 1.0, 0)


def test_a_moving_cell_is_checked_at_its_minimum_distance() -> None:
    def moving(d_min_m: float) -> WirelessConfig:
        return WirelessConfig.model_validate({"cell": {"d_min_m": d_min_m, "mobility": "random_waypoint"}})

    Clock(moving(10.0), 50, 1.0, 0)
    # placed far away, but free to walk to 1 um from the BS
    with pytest.raises(ConfigError, match=r"cell\.d_min_m=1e-06 m.*raise cell\.d_min_m"):
        Clock(moving(1e-6), 50, 1.0, 0)
