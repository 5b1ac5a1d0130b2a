"""The vectorised round (numpy over UEs) gives the SimPy round's timelines, bit for bit.

Each scenario runs the same clock twice, ``wireless.clock: auto`` (vectorised where it applies) and
``simpy``, and compares every record, every UE event, the arrivals handed to aggregation (in order) and
the discards. Scenarios are drawn at random: cell size, UEs, selection, policy (sync, deadline, first_k),
fading model and block, packet errors and retransmissions, shares, device profiles, skips, silent UEs,
payloads and samples (zeros included), and cells where many UEs tie (same position, no fading).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from tests.wireless.conftest import FakeDriver

from fedwave.errors import FedwaveError
from fedwave.sim import Clock, LocalResult, WirelessConfig


class SilentDriver(FakeDriver):
    """A FakeDriver whose UEs in ``silent(round, ue)`` go silent."""

    def __init__(self, silent: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self._silent = silent

    def local_updates(self, round: int, ues: Sequence[int], version: int) -> list[LocalResult]:
        out = super().local_updates(round, ues, version)
        return [
            LocalResult(
                r.payload_bytes, r.samples_processed, r.skip, r.handle, silent=self._silent(round, ue)
            )
            for r, ue in zip(out, ues)
        ]


def _scenario(seed: int) -> tuple[dict[str, Any], int, int, int, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    clients = int(rng.integers(1, n + 1))
    tie = rng.random() < 0.25  # every UE at one spot, no fading, equal devices: many same-instant events
    block = str(rng.choice(["coherence", "round"]))
    fading: dict[str, Any] = {
        "model": "none" if tie else str(rng.choice(["rayleigh", "rician", "none"])),
        "block": block,
        "rician_k": float(rng.uniform(0.5, 8.0)),
        "coherence_time_s": float(10 ** rng.uniform(-3.5, -1.5)),
        "outage_snr_db": float(rng.uniform(-5, 25)),
    }
    cell: dict[str, Any] = {"fading": fading, "radius_m": float(rng.uniform(150, 900))}
    if tie:
        cell.update(positions_m=[[200.0, 50.0]] * n, shadowing_db=0.0)
    access: dict[str, Any] = {"max_retransmissions": int(rng.integers(0, 4))}
    if block == "coherence" and rng.random() < 0.6:
        access["packet_errors"] = {"enabled": True, "waterfall_threshold_db": float(rng.uniform(0, 25))}
    if rng.random() < 0.3 and not tie:
        access["shares"] = rng.uniform(0.2, 3.0, n).tolist()
    devices: dict[str, Any] = {}
    if not tie and rng.random() < 0.5:
        devices = {"profile": "distribution", "model": str(rng.choice(["flops", "cycles"]))}
    policy_name = str(rng.choice(["sync", "deadline", "first_k"]))
    policy: dict[str, Any] = {"name": policy_name}
    if policy_name == "deadline":
        policy["deadline_s"] = float(10 ** rng.uniform(-2, 1))
    if policy_name == "first_k":
        policy["k"] = int(rng.integers(1, clients + 1))
    cfg = {"cell": cell, "access": access, "devices": devices, "policy": policy}
    if rng.random() < 0.3:
        cfg["event_trigger"] = {"enabled": True, "skip_message_bytes": int(rng.integers(0, 50))}
    p_silent = 0.15 if policy_name != "sync" and rng.random() < 0.5 else 0.0
    p_skip = 0.2 if "event_trigger" in cfg else 0.0
    salt = int(rng.integers(1 << 30))
    big = int(rng.integers(1_000, 400_000))
    drv = {
        "payload": lambda r, ue: big if tie else (big * (1 + (ue * 7 + r * 3 + salt) % 5)) // 3,
        "samples": lambda r, ue: (
            0 if (ue + r + salt) % 11 == 0 else 10 + (0 if tie else (ue * 13 + salt) % 90)
        ),
        "skip": lambda r, ue: ((ue * 31 + r * 17 + salt) % 100) / 100 < p_skip,
        "silent": lambda r, ue: ((ue * 37 + r * 11 + salt) % 100) / 100 < p_silent,
    }
    return cfg, n, clients, int(rng.integers(0, 1000)), drv


def _play(cfg: dict[str, Any], n: int, clients: int, seed: int, drv_kw: dict[str, Any], mode: str):
    wcfg = WirelessConfig.model_validate({**cfg, "clock": mode})
    clock = Clock(wcfg, n, 3e6, seed)
    drv = SilentDriver(broadcast=30_000, **drv_kw)
    try:
        t = clock.run(drv, 3, clients)
    except FedwaveError as exc:
        return ("error", str(exc)), clock
    trace = {
        "t": t,
        "records": [r.as_dict() for r in drv.records],
        "events": [[e.as_dict() for e in evs] for evs in drv.events],
        "arrivals": [(r, [(a.ue, a.handle, a.skip) for a in arr]) for r, arr in drv.aggregations],
        "discarded": drv.discarded,
    }
    return json.dumps(trace, sort_keys=True), clock


@pytest.mark.parametrize("seed", range(60))
def test_vectorised_round_equals_the_simpy_round(seed: int) -> None:
    cfg, n, clients, clock_seed, drv_kw = _scenario(seed)
    fast, fast_clock = _play(cfg, n, clients, clock_seed, drv_kw, "auto")
    slow, slow_clock = _play(cfg, n, clients, clock_seed, drv_kw, "simpy")
    assert fast_clock.vectorised and not slow_clock.vectorised
    assert slow_clock.vector_rounds == 0
    if not isinstance(fast, tuple):
        assert fast_clock.vector_rounds >= 1  # the scenario really went through the vectorised path
    assert fast == slow


def test_the_scenarios_cover_every_policy_outcome_and_ties() -> None:
    # the random scenarios above must exercise what they claim: each policy, losses, drops, silent UEs
    seen: set[str] = set()
    for seed in range(60):
        cfg, n, clients, clock_seed, drv_kw = _scenario(seed)
        out, _ = _play(cfg, n, clients, clock_seed, drv_kw, "auto")
        if isinstance(out, tuple):
            seen.add("error")
            continue
        trace = json.loads(out)
        seen.add(cfg["policy"]["name"])
        for evs in trace["events"]:
            seen.update(e["status"] for e in evs)
            ends = [e["t_upload_end"] for e in evs if e["status"] in ("arrived", "lost")]
            if len(ends) != len(set(ends)):
                seen.add("tie")
    assert {"sync", "deadline", "first_k", "arrived", "lost", "dropped", "silent", "tie"} <= seen


def test_queueing_and_time_varying_cells_stay_on_simpy() -> None:
    for extra in (
        {"access": {"scheme": "tdma"}},
        {"downlink": {"mode": "unicast"}},
        {"policy": {"name": "async"}},
        {"cell": {"mobility": {"model": "random_waypoint"}}},
        {"cell": {"fading": {"process": "gauss_markov"}}},
        {"access": {"allocation": "min_latency"}},
        {"clock": "simpy"},
    ):
        clock = Clock(WirelessConfig.model_validate(extra), 5, 1e6, 0)
        assert not clock.vectorised, extra
    assert Clock(WirelessConfig(), 5, 1e6, 0).vectorised


@pytest.mark.parametrize("mode", ["auto", "simpy"])
def test_an_upload_ending_exactly_at_the_deadline_counts(mode: str) -> None:
    # find when the second-to-last upload of round 0 ends (t0 = 0), then put the deadline exactly there
    base = {"cell": {"fading": {"model": "rayleigh"}}, "access": {"max_retransmissions": 1}}
    drv = FakeDriver(payload=lambda r, ue: 20_000 * (ue + 1), samples=40)
    Clock(WirelessConfig.model_validate(base), 4, 3e6, 7).run(drv, 1, 4)
    first, last = sorted(drv.events[0], key=lambda e: e.t_upload_end)[-2:]
    end = first.t_upload_end
    assert last.t_upload_end > end  # the other UE is still uploading at the deadline
    cfg = WirelessConfig.model_validate(
        {**base, "policy": {"name": "deadline", "deadline_s": end}, "clock": mode}
    )
    clock = Clock(cfg, 4, 3e6, 7)
    drv = FakeDriver(payload=lambda r, ue: 20_000 * (ue + 1), samples=40)
    clock.run(drv, 1, 4)
    ev = drv.events[0]
    assert drv.records[0].t_end == end
    assert ev[first.ue].status == "arrived" and ev[first.ue].t_upload_end == end
    assert ev[last.ue].status == "dropped" and ev[last.ue].t_upload_end == end
    assert clock.vector_rounds == (1 if mode == "auto" else 0)


@pytest.mark.parametrize("mode", ["auto", "simpy"])
def test_first_k_uploads_tied_with_the_kth_complete_but_do_not_count(mode: str) -> None:
    # identical UEs at one spot, no fading: all five uploads end at the same instant
    cfg = WirelessConfig.model_validate(
        {
            "cell": {"positions_m": [[300.0, 0.0]] * 5, "shadowing_db": 0.0, "fading": "none"},
            "policy": {"name": "first_k", "k": 2},
            "clock": mode,
        }
    )
    drv = FakeDriver(payload=50_000, samples=30)
    Clock(cfg, 5, 3e6, 1).run(drv, 1, 5)
    ev = drv.events[0]
    assert [e.status for e in ev] == ["arrived", "arrived", "dropped", "dropped", "dropped"]
    assert len({e.t_upload_end for e in ev}) == 1
    assert all(e.attempts == 1 and e.energy_radio_j > 0 for e in ev)  # finished: their whole airtime
    assert [a.ue for a in drv.aggregations[0][1]] == [0, 1]


class _EveryOtherRoundEmpty(FakeDriver):
    def select(self, round: int, available: Sequence[int], count: int) -> list[int]:
        return [] if round % 2 == 0 else list(available)[:count]


@pytest.mark.parametrize(
    "policy", [{"name": "sync"}, {"name": "deadline", "deadline_s": 0.5}, {"name": "first_k", "k": 2}]
)
def test_rounds_that_select_no_ue_match_too(policy: dict[str, Any]) -> None:
    traces = []
    for mode in ("auto", "simpy"):
        drv = _EveryOtherRoundEmpty()
        clock = Clock(WirelessConfig.model_validate({"clock": mode, "policy": policy}), 6, 3e6, 2)
        t = clock.run(drv, 4, 4)
        assert clock.vector_rounds == (4 if mode == "auto" else 0)
        assert [r.selected for r in drv.records] == [0, 4, 0, 4]
        traces.append(
            json.dumps(
                [t, [r.as_dict() for r in drv.records], [[e.as_dict() for e in evs] for evs in drv.events]]
            )
        )
    assert traces[0] == traces[1]


@pytest.mark.parametrize("policy", [{"name": "sync"}, {"name": "first_k", "k": 5}])
def test_a_close_that_silent_ues_block_is_the_same_error(policy: dict[str, Any]) -> None:
    kw = {
        "payload": lambda r, ue: 1000,
        "samples": lambda r, ue: 10,
        "skip": lambda r, ue: False,
        "silent": lambda r, ue: ue == 2,
    }
    fast, _ = _play({"policy": policy}, 5, 5, 0, kw, "auto")
    slow, _ = _play({"policy": policy}, 5, 5, 0, kw, "simpy")
    assert fast == slow
    assert fast[0] == "error" and "UEs [2] went silent" in fast[1] and policy["name"] in fast[1]


class _BadResults(FakeDriver):
    def __init__(self, bad: Any) -> None:
        super().__init__()
        self._bad = bad

    def local_updates(self, round: int, ues: Sequence[int], version: int) -> list[Any]:
        out: list[Any] = super().local_updates(round, ues, version)
        out[2] = self._bad
        return out


@pytest.mark.parametrize("mode", ["auto", "simpy"])
def test_a_driver_that_returns_a_bad_result_is_named_by_both_clocks(mode: str) -> None:
    cfg = WirelessConfig.model_validate({"clock": mode})
    with pytest.raises(TypeError, match="UE 2: the driver returned dict, not a LocalResult"):
        Clock(cfg, 4, 1e6, 0).run(_BadResults({"payload_bytes": 10}), 1, 4)
    with pytest.raises(ValueError, match="UE 2: LocalResult needs payload_bytes >= 0"):
        Clock(cfg, 4, 1e6, 0).run(_BadResults(LocalResult(payload_bytes=-5, samples_processed=3)), 1, 4)
    # a fraction was truncated and a count beyond int64 reached numpy's OverflowError: both named now
    for bad in ({"payload_bytes": 10.5}, {"payload_bytes": 2**70}, {"samples_processed": "3"}):
        fields: dict[str, Any] = {"payload_bytes": 10, "samples_processed": 3, **bad}
        with pytest.raises(ValueError, match=r"UE 2: LocalResult needs .* integers up to 2\^62"):
            Clock(cfg, 4, 1e6, 0).run(_BadResults(LocalResult(**fields)), 1, 4)


class _TooFewResults(FakeDriver):
    def local_updates(self, round: int, ues: Sequence[int], version: int) -> list[LocalResult]:
        return super().local_updates(round, ues, version)[:-1]


@pytest.mark.parametrize("mode", ["auto", "simpy"])
def test_a_driver_that_returns_too_few_results_is_refused(mode: str) -> None:
    with pytest.raises(ValueError, match="one result per UE: 4 UEs, 3 results"):
        Clock(WirelessConfig.model_validate({"clock": mode}), 4, 1e6, 0).run(_TooFewResults(), 1, 4)
