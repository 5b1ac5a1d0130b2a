"""The update path through codecs and the air: bytes, airtime, skips, staleness, downlink."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch

from fedwave.cli import main
from fedwave.codecs import available_codecs, get_codec
from fedwave.config import load_config
from fedwave.fl.run import Simulation, build_simulation, run
from fedwave.records import RoundRecord, UEEvent
from fedwave.rng import derive_seed, torch_generator
from fedwave.server import ReceivedUpdate
from fedwave.users.tensors import persistent_buffers

SMALL = ["data.max_train=300", "fl.num_ues=5", "fl.rounds=2", "model.name=mlp"]
CODECS = [
    "fp32",
    "fp16",
    "bf16",
    "uniform:4",
    "qsgd:16",
    "qsgd:16:elias",
    "terngrad",
    "sign",
    "topk:0.05",
    "randk:0.1",
    "eden:2",
    "drive",
    "powersgd:2",
    "ef(topk:0.05)",
    "ef(sign)",
]


def _record_codec_output(sim: Simulation, monkeypatch: pytest.MonkeyPatch) -> dict[tuple[int, int], int]:
    """Wrap the uplink codec's ``encode``: ``{(round, UE): len(bytes it returned)}``, filled as it runs.

    The call's (round, UE) is read off its random stream, which is derived from (seed, "codec", round,
    UE) as fedwave.rng prescribes, so no driver bookkeeping is used.
    """
    cfg = sim.cfg
    keys = [(r, u) for r in range(cfg.fl.rounds) for u in range(cfg.fl.num_ues)]
    seeds = {derive_seed(cfg.seed, "codec", r, u): (r, u) for r, u in keys}
    codec = sim.driver.uplink
    real = codec.encode
    lengths: dict[tuple[int, int], int] = {}

    def encode(*args: Any, **kwargs: Any) -> bytes:
        out = real(*args, **kwargs)
        key = seeds[kwargs["rng"].initial_seed()]
        assert key not in lengths, f"UE {key[1]} encoded twice in round {key[0]}"
        lengths[key] = len(out)
        return out

    monkeypatch.setattr(codec, "encode", encode)
    return lengths


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_runs_and_uplink_bytes_are_payload_lengths(
    codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each UE event's uplink bytes are the length of the bytes the codec returned for that UE and round
    (measured on the codec object itself), and the model learns under every codec."""
    cfg = load_config(None, [*SMALL, f"codec={codec}"])
    records: list[RoundRecord] = []
    events: list[UEEvent] = []
    sim = build_simulation(cfg, lambda rec, evs: (records.append(rec), events.extend(evs)))
    assert not persistent_buffers(sim.driver.bs.model), "the MLP sends no buffer message besides the codec's"
    lengths = _record_codec_output(sim, monkeypatch)
    sim.run_rounds(cfg.fl.rounds)
    assert len(records) == cfg.fl.rounds and len(events) == cfg.fl.rounds * cfg.fl.num_ues
    assert {e.status for e in events} == {"arrived"}
    assert {(e.round, e.ue): e.bytes_up for e in events} == lengths
    for rec in records:
        assert rec.bytes_up == sum(n for (r, _), n in lengths.items() if r == rec.round)
    # chance is 0.1 (10 digits); every codec's first two rounds reach at least 0.32 (measured) here
    accuracy = [r.accuracy for r in records]
    loss = [r.loss for r in records]
    assert all(0.0 <= a <= 1.0 for a in accuracy) and all(math.isfinite(v) for v in loss)
    assert accuracy[-1] > max(0.25, accuracy[0]) and loss[-1] < loss[0]


def test_uplink_bytes_equal_encoded_length_of_the_update() -> None:
    """For a codec of fixed size, each UE's uplink bytes are exactly len(encode(update))."""
    cfg = load_config(None, [*SMALL, "codec=uniform:8"])
    result = run(cfg)
    from fedwave.models import build_model

    model = build_model("mlp", (1, 8, 8), 10)
    shapes = [torch.zeros_like(p) for p in model.parameters()]
    expected = len(get_codec("uniform:8").encode(shapes, rng=torch_generator(0, "x")))
    assert {e.bytes_up for e in result.events} == {expected}


def test_uniform8_is_about_a_quarter_of_fp32() -> None:
    fp32 = run(load_config(None, [*SMALL, "fl.rounds=1"])).summary["bytes_up"]
    u8 = run(load_config(None, [*SMALL, "fl.rounds=1", "codec=uniform:8"])).summary["bytes_up"]
    assert 0.24 < u8 / fp32 < 0.27


def test_smaller_payload_shortens_airtime_by_the_size_ratio() -> None:
    """Same cell, seed and selection, no fading (one rate per upload): each upload's airtime scales with
    its message bits."""
    flat = [*SMALL, "wireless.cell.fading.model=none"]
    a = run(load_config(None, [*flat, "codec=fp32"]))
    b = run(load_config(None, [*flat, "codec=uniform:4"]))
    header = load_config(None, SMALL).wireless.access.header_bytes
    for ea, eb in zip(a.events, b.events):
        assert (ea.round, ea.ue) == (eb.round, eb.ue)
        ta, tb = ea.t_upload_end - ea.t_upload_start, eb.t_upload_end - eb.t_upload_start
        assert tb / ta == pytest.approx((eb.bytes_up + header) / (ea.bytes_up + header), rel=1e-9)
    ratio = b.summary["time_uplink_s"] / a.summary["time_uplink_s"]
    assert ratio == pytest.approx(b.summary["bytes_up"] / a.summary["bytes_up"], rel=0.01)


def test_event_trigger_skips_exactly_when_below_threshold() -> None:
    never = run(
        load_config(
            None,
            [
                *SMALL,
                "fl.rounds=3",
                "wireless.event_trigger.enabled=true",
                "wireless.event_trigger.threshold=1e9",
            ],
        )
    )
    # The first upload of each UE always goes (nothing uploaded yet); later ones are all skipped.
    first = {}
    for ev in never.events:
        first.setdefault(ev.ue, ev.round)
        assert ev.status == ("arrived" if ev.round == first[ev.ue] else "skipped")
    always = run(
        load_config(
            None,
            [
                *SMALL,
                "fl.rounds=3",
                "wireless.event_trigger.enabled=true",
                "wireless.event_trigger.threshold=0",
            ],
        )
    )
    assert sum(r.skipped for r in always.records) == 0
    assert sum(r.skipped for r in never.records) == sum(1 for e in never.events if e.status == "skipped") > 0


def test_downlink_codec_changes_broadcast_bytes() -> None:
    fp32 = run(load_config(None, SMALL)).records
    fp16 = run(load_config(None, [*SMALL, "codec.downlink=fp16"])).records
    # version 0 (the initial model) always goes out exactly, as fp32; later versions through the codec
    assert fp16[0].bytes_down == fp32[0].bytes_down
    assert 0.49 < fp16[1].bytes_down / fp32[1].bytes_down < 0.51


def test_async_policy_runs_and_weights_stale_updates() -> None:
    from fedwave.server import BaseStation

    result = run(
        load_config(
            None,
            [
                *SMALL,
                "fl.rounds=4",
                "wireless.policy.name=async",
                "wireless.policy.buffer_k=2",
                "fl.clients_per_round=4",
            ],
        )
    )
    assert len(result.records) == 4
    assert any(e.staleness > 0 for e in result.events)
    # The BS multiplies each update's weight by its staleness factor.
    from types import SimpleNamespace

    model = torch.nn.Linear(2, 1, bias=False)
    cfg = SimpleNamespace(optimizer="sgd", lr=1.0, momentum=0.0, nesterov=False)
    bs = BaseStation(
        model,
        cfg,
        algorithm="fedavg",
        weighting="uniform",
        x_test=torch.zeros(1, 2),
        y_test=torch.zeros(1, dtype=torch.long),
    )
    w0 = model.weight.detach().clone()
    fresh, stale = [torch.ones(1, 2)], [torch.full((1, 2), 4.0)]
    bs.aggregate([ReceivedUpdate(0, fresh, 1, weight=1.0), ReceivedUpdate(1, stale, 1, weight=1 / 3**0.5)])
    w = 1 / 3**0.5
    # FedBuff: the staleness factor damps the update; it is not normalised away by the weights' sum
    torch.testing.assert_close(bs.model.weight.detach(), w0 + (1 + 4 * w) / 2)


def test_codecs_command_lists_every_codec(capsys: pytest.CaptureFixture[str]) -> None:
    """One row per registered codec family (usage, parameters, unbiased yes/no, description); every codec
    spec used in these tests belongs to a listed family and builds."""
    assert main(["codecs"]) == 0
    out = capsys.readouterr().out
    table, _, under_ef = out.partition("\n\n")
    lines = table.splitlines()
    assert lines[0].split() == ["codec", "parameters", "unbiased", "description"]
    # the second section says what ef(<codec>) sends for each family, in the same order
    ef_rows = under_ef.splitlines()
    assert ef_rows[0].startswith("under ef(<codec>)")
    assert [r.split()[0] for r in ef_rows[1:]] == [i.name for i in available_codecs()]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == [i.name for i in available_codecs()]
    families = [re.split(r"[:(]", r[0])[0] for r in rows]
    assert len(families) == len(set(families)), "each family once"
    known = ["fp32", "fp16", "bf16", "uniform", "qsgd", "terngrad", "sign", "topk", "randk", "eden", "drive"]
    assert set(known) | {"powersgd", "ef"} <= set(families)
    at = lines[0].index("unbiased")
    flags = {line.split()[0]: line[at : at + 8].strip() for line in lines[1:]}
    assert set(flags.values()) == {"yes", "no"}
    assert (flags["fp32"], flags["sign"], flags["drive"], flags["topk:r"]) == ("yes", "no", "yes", "no")
    for spec in CODECS:
        assert re.split(r"[:(]", spec)[0] in families
        assert get_codec(spec) is not None
