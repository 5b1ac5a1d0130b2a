"""Simulated time is a pure function of config and seed: repeatable, resumable, blind to host load."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedwave.sim import Clock, WirelessConfig

SIM_ROOT = Path(__file__).resolve().parents[2] / "src" / "fedwave"

CONFIGS = {
    "fdma": {"access": {"packet_errors": {"enabled": True, "waterfall_threshold_db": 20.0}}},
    "round-outage": {"cell": {"fading": {"block": "round", "outage_snr_db": 25.0}}},
    "tdma-unicast": {"access": {"scheme": "tdma"}, "downlink": {"mode": "unicast"}},
    "deadline": {"policy": {"name": "deadline", "deadline_s": 1.0}, "devices": {"profile": "distribution"}},
    "first_k": {"policy": {"name": "first_k", "k": 5}, "cell": {"fading": "rician"}},
    "async": {"policy": {"name": "async", "buffer_k": 3, "concurrency": 6}, "access": {"scheme": "tdma"}},
    "aircomp": {"access": {"scheme": "aircomp", "aircomp": {"truncation_fading_power": 0.3}}},
    "aircomp-one-bit-deadline": {
        "access": {"scheme": "aircomp", "aircomp": {"mode": "one_bit"}},
        "policy": {"name": "deadline", "deadline_s": 1.0},
        "devices": {"profile": "distribution"},
        "cell": {"fading": {"model": "rician", "block": "round"}},
        "downlink": {"mode": "unicast"},
    },
    "gauss-markov-mobile": {
        "cell": {
            "fading": {"model": "rician", "process": "gauss_markov", "coherence_time_s": 0.002},
            "mobility": {"model": "random_waypoint", "pause_s": 0.2},
        },
        "policy": {"name": "deadline", "deadline_s": 1.0},
    },
    "gauss-markov-async": {
        "cell": {"fading": {"process": "gauss_markov"}, "mobility": "random_waypoint"},
        "policy": {"name": "async", "buffer_k": 3, "concurrency": 6},
        "downlink": {"mode": "unicast"},
    },
    "min_latency": {"access": {"allocation": "min_latency"}, "devices": {"profile": "distribution"}},
    "min_energy": {
        "access": {"allocation": "min_energy"},
        "policy": {"name": "deadline", "deadline_s": 1.0},
        "devices": {"model": "cycles", "profile": "distribution"},
    },
    "min-latency-mobile": {
        "access": {"allocation": "min_latency"},
        "cell": {"fading": {"process": "gauss_markov"}, "mobility": "random_waypoint"},
    },
}


#: The busy-host check runs the old paths, AirComp, the time-varying channel (Gauss-Markov fading,
#: mobility) and the min_energy allocation.
BUSY = {
    "tdma-errors-unicast": {
        "access": {"scheme": "tdma", "packet_errors": {"enabled": True}},
        "downlink": {"mode": "unicast"},
    },
    "aircomp": CONFIGS["aircomp"],
    "gauss-markov-mobile": {
        "cell": {
            "fading": {"process": "gauss_markov", "coherence_time_s": 0.005},
            "mobility": {"model": "random_waypoint"},
        },
        "access": {"packet_errors": {"enabled": True}},
    },
    "min_energy": CONFIGS["min_energy"],
}


def timeline(
    fake_driver,
    data: dict,
    seed: int = 1,
    rounds: int = 4,
    start_round: int = 0,
    t_start: float = 0.0,
    ues: int = 20,
):
    cfg = WirelessConfig.model_validate(data)
    drv = fake_driver(payload=lambda r, ue: 20_000 + 1000 * ue, samples=lambda r, ue: 40 + ue % 50)
    Clock(cfg, ues, 7.35e6, seed).run(drv, rounds, ues // 2, start_round=start_round, t_start=t_start)
    rows = [
        {"record": r.as_dict(), "events": [e.as_dict() for e in evs]}
        for r, evs in zip(drv.records, drv.events)
    ]
    rows.append({"channel_estimates": drv.channel_estimates})
    return json.dumps(rows, sort_keys=True), drv


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_same_timeline(fake_driver, name: str) -> None:
    a, drv = timeline(fake_driver, CONFIGS[name])
    b, _ = timeline(fake_driver, CONFIGS[name])
    assert a == b
    c, _ = timeline(fake_driver, CONFIGS[name], seed=2)
    assert a != c
    for r in drv.records:
        total = r.time_compute + r.time_uplink + r.time_downlink + r.time_queue + r.time_wait
        assert total == pytest.approx(r.duration, rel=1e-9, abs=1e-12)
        assert r.time_wait >= 0.0


def test_resume_at_round_r_is_exact(fake_driver) -> None:
    data = CONFIGS["fdma"]
    _, full = timeline(fake_driver, data, rounds=4)
    _, resumed = timeline(fake_driver, data, rounds=2, start_round=2, t_start=full.records[2].t_start)
    assert len(resumed.records) == 2
    for a, b in zip(resumed.records, full.records[2:]):
        assert json.dumps(a.as_dict()) == json.dumps(b.as_dict())  # NaN accuracy compares as text
    for a_evs, b_evs in zip(resumed.events, full.events[2:]):
        assert [e.as_dict() for e in a_evs] == [e.as_dict() for e in b_evs]


@pytest.mark.parametrize("name", sorted(BUSY))
def test_busy_host_gives_the_same_timeline(fake_driver, name: str) -> None:
    data = BUSY[name]
    quiet, _ = timeline(fake_driver, data, rounds=4, ues=300)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)  # let the hogs load both cores
        assert all(p.poll() is None for p in hogs)
        busy, _ = timeline(fake_driver, data, rounds=4, ues=300)
    finally:
        for p in hogs:
            p.kill()
        for p in hogs:
            p.wait(timeout=10)
    assert busy == quiet


HOST_CLOCK = re.compile(
    r"\btime\.(time|time_ns|perf_counter|perf_counter_ns|monotonic|monotonic_ns|process_time|clock_gettime)\b"
    r"|\bdatetime\.(now|utcnow|today)\b|\bdate\.today\b|from\s+time\s+import|import\s+datetime|from\s+datetime"
)


def test_no_host_clock_in_simulation_code() -> None:
    files = [p for d in ("channel", "devices", "sim") for p in (SIM_ROOT / d).rglob("*.py")]
    assert len(files) > 10
    offenders = [
        str(p.relative_to(SIM_ROOT))
        for p in files
        if p.name != "bench.py" or p.parent.name != "sim"
        if HOST_CLOCK.search(p.read_text())
    ]
    assert offenders == []
    assert HOST_CLOCK.search((SIM_ROOT / "sim" / "bench.py").read_text())  # the pattern does match a read
