"""The Flower example app in Flower's simulation engine, and its equivalence with fedwave.

One simulation (Ray starts once) runs the example app (``examples/flower_app/run.py``, the README's
command) with three codecs: ``fp32`` (exact), ``uniform:8`` (lossy, stochastic rounding) and
``ef(topk:0.1)`` (lossy, per-UE error-feedback state). fedwave then runs the same config (same data split,
initial model, UEs, local SGD and codec streams; every UE every round, no radio effect on the model) and
the global models after 3 rounds must agree within 1e-5, the Flower messages must carry fedwave's
payload lengths (and bytes, for the same update), and Ray must leave no process behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("flwr")

import psutil
import torch

from fedwave.codecs import get_codec
from fedwave.config import Config
from fedwave.fl.run import build_simulation
from fedwave.flower.apps import FlowerRun
from fedwave.flower.trainer import FedwaveUEs
from fedwave.rng import torch_generator

RUN = Path(__file__).resolve().parents[2] / "examples" / "flower_app" / "run.py"
CODECS = ["fp32", "uniform:8", "ef(topk:0.1)"]
ARGV = [a for c in CODECS for a in ("--codec", c)] + ["--ues", "3", "--cpus", "1"]
ROW = re.compile(r"^(\S+)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+(\d+)\s+\[([0-9, ]+)\]$")


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flower_example_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ray_processes() -> set[int]:
    found = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "raylet" in cmd or "gcs_server" in cmd or "ray::" in cmd or "ray/_private/workers" in cmd:
            found.add(p.info["pid"])
    return found


@pytest.fixture(scope="module")
def example() -> tuple[Config, dict[str, FlowerRun], str]:
    """The example's config, its Flower runs by codec and its printed table (one simulation)."""
    before = _ray_processes()
    module = _example()
    cfg, runs = module.simulate(module.parse_args(ARGV))
    table = io.StringIO()
    module.print_rounds(runs, table)
    deadline = time.monotonic() + 30.0  # the wall clock only bounds this wait
    while (_ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not (_ray_processes() - before), "Ray processes were left running"
    return cfg, {r.codec: r for r in runs}, table.getvalue()


def _fedwave(cfg: Config, codec: str) -> tuple[list[torch.Tensor], dict[tuple[int, int], bytes], list]:
    """fedwave's global model after the rounds, every uplink message by (round, UE), and the records."""
    sim = build_simulation(cfg.model_copy(update={"codec": cfg.codec.model_copy(update={"uplink": codec})}))
    messages: dict[tuple[int, int], bytes] = {}
    encode = sim.driver._encode

    def spy(round_, ue, version, shared, dispatch, silent):  # type: ignore[no-untyped-def]
        pending = encode(round_, ue, version, shared, dispatch, silent)
        messages[(round_, ue)] = pending.message
        return pending

    sim.driver._encode = spy  # type: ignore[method-assign]
    sim.run_rounds(cfg.fl.rounds)
    return [p.detach().clone() for p in sim.driver.bs.model.parameters()], messages, sim.driver.records


@pytest.mark.slow
def test_the_example_prints_accuracy_and_bytes_per_round(example) -> None:  # type: ignore[no-untyped-def]
    cfg, _, table = example
    rows = [m.groups() for line in table.splitlines() if (m := ROW.match(line.strip()))]
    assert [(codec, int(rnd)) for codec, rnd, *_ in rows] == [(c, r) for c in CODECS for r in (1, 2, 3)]
    for codec, _, accuracy, *_ in rows:
        if codec != "ef(topk:0.1)":
            assert float(accuracy) > 0.6, table  # digits after a round of FedAvg (chance: 0.1)
    assert float(rows[-1][2]) > 0.7, table
    shapes = [tuple(p.shape) for p in FedwaveUEs.cached(cfg).initial_parameters()]
    numel = sum(torch.Size(s).numel() for s in shapes)
    for codec in ("fp32", "uniform:8"):  # fixed-size payloads: every UE's message has this length
        update = [0.01 * torch.randn(s, generator=torch.Generator().manual_seed(1)) for s in shapes]
        size = len(get_codec(codec).encode(update, rng=torch_generator(0, "t")))
        for r in [r for r in rows if r[0] == codec]:
            assert [int(x) for x in r[5].split(",")] == [size] * cfg.fl.num_ues
    fp32 = int(next(r for r in rows if r[0] == "fp32")[4])
    assert 4 * numel < fp32 < 4 * numel + 200  # the floats and a header
    assert int(next(r for r in rows if r[0] == "uniform:8")[4]) < fp32 / 3.5


@pytest.mark.slow
@pytest.mark.parametrize("codec", CODECS)
def test_flower_fedavg_through_the_codec_equals_fedwave(example, codec: str) -> None:  # type: ignore[no-untyped-def]
    cfg, runs, _ = example
    run = runs[codec]
    params, _, records = _fedwave(cfg, codec)
    assert [r.arrived for r in records] == [cfg.fl.num_ues] * 3, "fedwave must aggregate every UE every round"
    diff = max(float((a - b).abs().max()) for a, b in zip(params, run.parameters))
    print(f"{codec}: max |w_flower - w_fedwave| after 3 rounds = {diff:.3g}")
    assert diff <= 1e-5
    initial = FedwaveUEs.cached(cfg).initial_parameters()
    assert max(float((a - b).abs().max()) for a, b in zip(params, initial)) > 1e-2, "the models must move"
    assert [r.accuracy for r in run.rounds] == pytest.approx([r.accuracy for r in records], abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("codec", CODECS)
def test_the_flower_messages_carry_fedwaves_payloads(example, codec: str) -> None:  # type: ignore[no-untyped-def]
    """Per round and UE the payload length in the Flower message is fedwave's (the bytes its UE sends on
    the air before the radio header). The bytes themselves (SHA-256) are identical for the same update: in
    round 1 (same initial model), and in every round when the two runs stay bit for bit equal. (With fp32
    the two means may differ in the last bit of a few coordinates: FedAvg averages models, fedwave updates,
    and a float64 rounding of 1e-17 can tip a float32 tie; later updates then differ by ~1e-9.)"""
    cfg, runs, _ = example
    run = runs[codec]
    params, messages, _ = _fedwave(cfg, codec)
    same_run = all(torch.equal(a, b) for a, b in zip(params, run.parameters))
    everyone = dict.fromkeys(range(cfg.fl.num_ues), 0)
    for r in run.rounds:
        fw = {ue: m for (rnd, ue), m in messages.items() if rnd == r.round - 1}
        assert r.log.payload_bytes == {ue: len(m) for ue, m in fw.items()}
        if r.round == 1 or same_run:
            assert r.log.payload_sha256 == {ue: hashlib.sha256(m).hexdigest() for ue, m in fw.items()}
        assert r.log.encodes == {ue: r.round for ue in everyone}, "each node's Context.state must persist"
        assert not r.log.rejected
    sizes = sorted({n for r in run.rounds for n in r.log.payload_bytes.values()})
    print(f"{codec}: bytes per message {sizes}; identical bytes in every round: {same_run}")


def test_the_example_names_a_bad_codec_without_a_traceback() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(RUN), "--codec", "unifrom:8"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2
    assert "unknown codec 'unifrom:8'" in proc.stderr and "Traceback" not in proc.stderr
