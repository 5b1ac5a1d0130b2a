"""Issue 8 (simulation items) and issue 9 (faulty UEs) end to end: every update is aggregated exactly once
or recorded with its reason; async follows FedBuff; event triggers and error feedback only believe what
the BS received; the first broadcast is exact; faulty UEs never poison a run silently."""

from __future__ import annotations

import math

import pytest
import torch

from fedwave.cli import main
from fedwave.config import load_config
from fedwave.errors import ConfigError
from fedwave.fl.driver import FederatedDriver, RunStalled
from fedwave.fl.run import build_simulation, run
from fedwave.models import build_model
from fedwave.server import BaseStation, ReceivedUpdate

SMALL = ["data.max_train=300", "fl.num_ues=6", "fl.rounds=3", "model.name=mlp"]
ASYNC = [
    *SMALL,
    "fl.rounds=8",
    "wireless.policy.name=async",
    "wireless.policy.buffer_k=3",
    "wireless.policy.concurrency=4",
]


class _Ledger:
    """Wraps a driver's local_updates/aggregate/discard to see every handle's fate."""

    def __init__(self, driver: FederatedDriver, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[int] = []
        self.aggregated: list[int] = []
        self.discarded: dict[str, list[int]] = {}
        self.params_after: list[list[torch.Tensor]] = []
        lu, agg, disc = driver.local_updates, driver.aggregate, driver.discard

        def local_updates(round, ues, version):  # type: ignore[no-untyped-def]
            out = lu(round, ues, version)
            self.made += [r.handle for r in out]
            return out

        def aggregate(round, arrivals):  # type: ignore[no-untyped-def]
            self.aggregated += [a.handle for a in arrivals]
            agg(round, arrivals)
            self.params_after.append(driver.bs.parameters_snapshot())

        def discard(handles, reason):  # type: ignore[no-untyped-def]
            self.discarded.setdefault(reason, []).extend(handles)
            disc(handles, reason)

        monkeypatch.setattr(driver, "local_updates", local_updates)
        monkeypatch.setattr(driver, "aggregate", aggregate)
        monkeypatch.setattr(driver, "discard", discard)


def test_async_aggregates_every_arrival_exactly_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = build_simulation(load_config(None, ASYNC))
    ledger = _Ledger(sim.driver, monkeypatch)
    sim.run_rounds(8)
    recs = sim.driver.records
    assert len(recs) == 8
    # each round aggregates buffer_k = 3 arrivals, none twice, and none is left pending
    assert len(ledger.aggregated) == 8 * 3 == len(set(ledger.aggregated))
    discarded = [h for hs in ledger.discarded.values() for h in hs]
    assert sorted(ledger.aggregated + discarded) == sorted(ledger.made)
    assert set(ledger.discarded) <= {"in_flight", "lost"}
    assert sim.driver._pending == {}
    assert sum(r.arrived for r in recs) == 24 == sim.driver.aggregated_total
    # every round that reports arrivals changes the model (the old code left most rounds unchanged)
    before = None
    for params in ledger.params_after:
        if before is not None:
            assert any(not torch.equal(a, b) for a, b in zip(params, before))
        before = params


def test_async_ue_dispatched_twice_trains_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 UEs in the cell, concurrency 1: the same UE can be dispatched again before the buffer fills
    cfg = load_config(
        None,
        [
            "data.max_train=100",
            "fl.num_ues=2",
            "model.name=mlp",
            "wireless.policy.name=async",
            "wireless.policy.buffer_k=3",
            "wireless.policy.concurrency=1",
        ],
    )
    sim = build_simulation(cfg)
    calls: list[int] = []
    for k, user in enumerate(sim.driver.users):
        real = user.compute_local_updates

        def counted(*a, _k=k, _real=real, **kw):  # type: ignore[no-untyped-def]
            calls.append(_k)
            return _real(*a, **kw)

        monkeypatch.setattr(user, "compute_local_updates", counted)
    sim.run_rounds(2)
    dispatched = sum(1 for r in sim.driver.records for _ in range(r.arrived + r.lost))
    assert len(calls) >= dispatched == 6
    assert sim.driver.records[0].arrived == 3


def test_fedbuff_staleness_damps_a_uniformly_stale_buffer() -> None:
    model = torch.nn.Linear(3, 1, bias=False)
    cfg = load_config(None, []).server
    w0 = model.weight.detach().clone()
    bs = BaseStation(
        model,
        cfg,
        algorithm="fedavg",
        weighting="samples",
        x_test=torch.zeros(1, 3),
        y_test=torch.zeros(1).long(),
    )
    s = 1 / math.sqrt(1 + 3)  # staleness 3
    ups = [ReceivedUpdate(k, [torch.full((1, 3), float(k + 1))], 10 * (k + 1), weight=s) for k in range(3)]
    bs.aggregate(ups)
    mean = (10 * 1 + 20 * 2 + 30 * 3) / 60  # sample-weighted mean of 1, 2, 3
    torch.testing.assert_close(bs.model.weight.detach(), w0 + s * mean)  # normalising would give w0 + mean


@pytest.mark.slow
def test_async_40_rounds_reach_sync_20_rounds_accuracy() -> None:
    sync = run(load_config(None, ["fl.rounds=20"])).records[-1].accuracy
    asyn = run(load_config(None, ["fl.rounds=40", "wireless.policy.name=async"])).records
    assert sum(r.arrived for r in asyn) == 400  # the same number of updates as 20 sync rounds
    assert asyn[-1].accuracy > sync - 0.05, (asyn[-1].accuracy, sync)


def test_trigger_reference_moves_only_on_delivery() -> None:
    cfg = load_config(
        None,
        [
            *SMALL,
            "wireless.event_trigger.enabled=true",
            "wireless.policy.name=deadline",
            "wireless.policy.deadline_s=1e-6",
            "fl.rounds=2",
        ],
    )
    sim = build_simulation(cfg)
    sim.run_rounds(2)
    assert all(r.dropped == r.selected for r in sim.driver.records)
    assert sim.driver.last_uploaded == {}  # nothing reached the BS, so no UE may compare against it
    ok = build_simulation(load_config(None, [*SMALL, "wireless.event_trigger.enabled=true", "fl.rounds=1"]))
    ok.run_rounds(1)
    assert sorted(ok.driver.last_uploaded) == list(range(6))


def test_fdma_band_goes_to_uploaders_so_skips_save_time() -> None:
    base = [
        *SMALL,
        "fl.rounds=4",
        "wireless.event_trigger.enabled=true",
        "wireless.event_trigger.mode=absolute",
    ]
    every = run(load_config(None, [*base, "wireless.event_trigger.threshold=0"])).records
    skips = run(load_config(None, [*base, "wireless.event_trigger.threshold=1e9"])).records
    # from round 1 on, every UE skips under the huge threshold: the uploads of round 1 are "no update"
    assert skips[1].skipped == skips[1].selected and every[1].skipped == 0
    assert skips[1].time_uplink < every[1].time_uplink


def test_error_feedback_takes_back_a_message_that_never_arrived() -> None:
    cfg = load_config(
        None,
        [*SMALL, "codec=ef(topk:0.1)", "wireless.policy.name=deadline", "wireless.policy.deadline_s=1e-6"],
    )
    sim = build_simulation(cfg)
    sim.run_rounds(1)
    assert sim.driver.records[0].dropped == 6
    # nothing was delivered: each residual holds the whole update (x + e_old, e_old = 0), not x - C(x)
    sim2 = build_simulation(load_config(None, [*SMALL, "codec=fp32"]))
    shared, _ = sim2.driver.users[2].compute_local_updates(
        sim2.driver._payloads[0], rng=__import__("fedwave.rng").rng.torch_generator(0, "train", 0, 2)
    )
    got = [sim.driver.codec_state[2][f"residual.{i}"] for i in range(len(shared["gradients"]))]
    for g, x in zip(got, shared["gradients"]):
        torch.testing.assert_close(g, x)


def test_first_broadcast_is_exact_under_a_lossy_downlink() -> None:
    from fedwave.codecs import get_codec

    sim = build_simulation(load_config(None, [*SMALL, "codec.downlink=topk:0.01"]))
    initial = sim.driver.bs.parameters_snapshot()
    for sent, true in zip(sim.driver._payloads[0]["parameters"], initial):
        assert torch.equal(sent, true)
    # ... and it costs what the exact model costs on the air: its fp32 message
    fp32 = len(get_codec("fp32").encode(initial, rng=torch.Generator()))
    assert sim.driver.broadcast_bytes() == fp32
    sim.run_rounds(2)
    assert sim.driver.records[-1].accuracy > 0.3  # UEs started from the real model


def test_cell_command_uses_the_selected_ues_share(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cell", "-o", "fl.num_ues=20", "-o", "fl.clients_per_round=10"]) == 0
    out = capsys.readouterr().out
    assert " 2e+06 " in out and " 1e+06 " not in out


def test_cell_command_under_aircomp_shows_the_analog_phase(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cell", "-o", "fl.num_ues=4", "-o", "wireless.access.scheme=aircomp"]) == 0
    out = capsys.readouterr().out
    entries = sum(p.numel() for p in build_model("convnet", (1, 8, 8), 10).parameters())
    assert f"analog update of {entries:,} entries ({(entries + 1) // 2:,} symbols" in out
    airtime = f"{(entries + 1) // 2 / 20e6:.4g}"
    assert out.count(f" {airtime} ") == 4 + 1  # every UE's upload is the analog phase; and the median


# --------------------------------------------------------------------------- faulty UEs (issue 9)


def test_nan_from_an_error_feedback_ue_does_not_poison_later_rounds() -> None:
    cfg = load_config(
        None,
        [
            *SMALL,
            "fl.rounds=8",
            "codec=ef(topk:0.1)",
            "faults.kind=nan",
            "faults.ues=[2]",
            "faults.probability=0.5",
        ],
    )
    result = run(cfg)
    mine = [e for e in result.events if e.ue == 2]
    bad = [e for e in mine if e.behaviour == "nan"]
    good = [e for e in mine if e.behaviour == "honest"]
    assert bad and good
    assert all(e.status == "rejected" for e in bad)
    assert all(e.status == "arrived" for e in good)  # its residual did not carry the NaN forward


def test_a_huge_update_is_rolled_back_and_recorded() -> None:
    cfg = load_config(None, [*SMALL, "fl.rounds=3", "faults.kind=huge", "faults.ues=[0]"])
    result = run(cfg)
    for rec in result.records:
        assert rec.rolled_back == rec.selected and rec.arrived == 0
        assert math.isfinite(rec.loss)
    sim = build_simulation(cfg)
    init = sim.driver.bs.parameters_snapshot()
    sim.run_rounds(3)
    for a, b in zip(init, sim.driver.bs.parameters_snapshot()):
        assert torch.equal(a, b)  # every aggregation was undone exactly


def test_norm_bounding_keeps_learning_under_a_huge_update() -> None:
    base = [*SMALL, "fl.rounds=4", "faults.kind=huge", "faults.ues=[0]"]
    result = run(load_config(None, [*base, "server.norm_bound=1.0"]))
    assert all(r.rolled_back == 0 and r.arrived == r.selected for r in result.records)
    assert all(r.extra["clipped"] >= 1 for r in result.records)
    assert result.records[-1].accuracy > 0.4


def test_a_run_that_aggregates_nothing_stops_with_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*SMALL, "fl.rounds=20", "faults.kind=inf", "faults.fraction=1.0", "server.max_idle_rounds=3"]
    with pytest.raises(RunStalled, match="no update was aggregated in the last 3 rounds"):
        run(load_config(None, args))
    code = main(["run", "-q", *[x for a in args for x in ("-o", a)], "--out", "/tmp/fedwave-stall-test"])
    assert code == 2
    assert "no update was aggregated" in capsys.readouterr().err


@pytest.mark.parametrize("kind,status", [("nan", "rejected"), ("inf", "rejected"), ("zero", "arrived")])
def test_fault_kinds_end_to_end(kind: str, status: str) -> None:
    result = run(load_config(None, [*SMALL, f"faults.kind={kind}", "faults.ues=[1,4]"]))
    for e in result.events:
        assert e.behaviour == (kind if e.ue in (1, 4) else "honest")
        assert e.status == (status if e.ue in (1, 4) else "arrived")


def test_silent_ues_under_deadline_and_refused_under_sync() -> None:
    result = run(
        load_config(
            None,
            [
                *SMALL,
                "faults.kind=silent",
                "faults.ues=[3]",
                "wireless.policy.name=deadline",
                "wireless.policy.deadline_s=30",
            ],
        )
    )
    silent = [e for e in result.events if e.ue == 3]
    assert silent and all(e.status == "silent" and e.bytes_up == 0 for e in silent)
    assert all(r.silent == 1 and r.arrived == 5 for r in result.records)
    with pytest.raises(ConfigError, match="silent"):
        load_config(None, [*SMALL, "faults.kind=silent", "faults.ues=[3]"])


def test_the_bs_decodes_against_the_models_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A well-formed payload of the wrong layout (here 2^20 values in one tensor, the mlp has other
    shapes) is refused by the BS's decode as undecodable; the round goes on with the other UEs."""
    from fedwave.rng import torch_generator

    sim = build_simulation(load_config(None, [*SMALL, "fl.rounds=1", "codec=randk:0.001"]))
    driver = sim.driver
    encode = driver._encode

    def crafted(round, ue, version, shared, dispatch, silent):  # type: ignore[no-untyped-def]
        pending = encode(round, ue, version, shared, dispatch, silent)
        if ue == 0:
            wrong = [torch.ones(2**20)]
            pending.message = driver.uplink.encode(wrong, rng=torch_generator(0, "x"), state={})
        return pending

    monkeypatch.setattr(driver, "_encode", crafted)
    events: list = []
    driver.on_round = lambda record, evs: events.extend(evs)
    sim.run_rounds(1)
    status = {e.ue: e.status for e in events}
    assert status[0] == "undecodable"
    assert all(s == "arrived" for ue, s in status.items() if ue != 0)
    assert driver.records[0].arrived == len(status) - 1 and driver.records[0].lost == 1
