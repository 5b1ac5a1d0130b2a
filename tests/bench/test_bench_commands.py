"""The issue-12 benchmarks run as ``fedwave bench <name>`` and print figures consistent with each other."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from fedwave.cli import main


def _figure(text: str, pattern: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return float(m.group(1))


def test_flower_task_never_imports_fedwave() -> None:
    # Flower's side of vs_flower must not pay for (or profit from) fedwave's imports.
    spec = importlib.util.find_spec("fedwave.bench.flower_task")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and not [m for m in names if m.split(".")[0] == "fedwave"]


def test_efficiency_prints_both_executors_against_matmul(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "efficiency", "--epochs", "1", "-o", "data.dataset=digits", "-o", "model.name=2nn"]
    assert main([*argv, "-o", "fl.num_ues=20"]) == 0
    out = capsys.readouterr().out
    before = _figure(out, r"matmul \(1 thread\)\s+([\d.]+) GFLOP/s  \(before training\)")
    after = _figure(out, r"matmul \(1 thread\)\s+([\d.]+) GFLOP/s  \(after training\)")
    peak, low = max(before, after), min(before, after)
    for executor in ("sequential", "batched"):
        rate = _figure(out, executor + r"\s+training\s+([\d.]+) GFLOP/s")
        ratio = _figure(out, executor + r"\s+efficiency\s+([\d.]+) of matmul")
        lower = _figure(out, executor + r"\s+efficiency.*\(([\d.]+) of the lower\)")
        assert 0 < rate < 2 * peak  # training cannot beat the dense matmul rate by much
        # the printed ratios are those of the printed rates: against the higher matmul reading, and the lower
        assert ratio == pytest.approx(rate / peak, abs=0.006)
        assert lower == pytest.approx(rate / low, abs=0.006)


def test_vs_flower_gives_fedwave_the_cpus_flower_gets_unless_told() -> None:
    from argparse import Namespace

    from fedwave.bench.vs_flower import fedwave_command

    base = {"ues": 100, "rounds": 20, "executor": "batched", "seed": 0}
    as_flower = fedwave_command(Namespace(**base, cpus=3, threads=None), Path("out"))
    told = fedwave_command(Namespace(**base, cpus=3, threads=1), Path("out"))
    assert [a for a in as_flower if a.startswith("engine.threads=")] == ["engine.threads=3"]
    assert [a for a in told if a.startswith("engine.threads=")] == ["engine.threads=1"]


@pytest.mark.slow
def test_vs_flower_times_both_and_prints_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("flwr")
    assert main(["bench", "vs_flower", "--repeats", "1", "--rounds", "1", "--ues", "3"]) == 0
    out = capsys.readouterr().out
    fw = _figure(out, r"median\s+fedwave\s+([\d.]+) s")
    assert "engine.threads=2)" in out  # as many as Flower's CPUs (--cpus 2)
    fl = _figure(out, r"median\s+flower\s+([\d.]+) s")
    ratio = _figure(out, r"fedwave / flower\s+([\d.]+)")
    # the printed ratio (3 decimals) of the unrounded medians (2 decimals printed)
    assert ratio == pytest.approx(fw / fl, abs=5e-4 + 5e-3 * (1 + fw / fl) / fl)
    # Both really trained: each printed a final accuracy above chance (10 classes) after one round.
    assert _figure(out, r"fedwave final accuracy ([\d.]+)") > 0.2
    assert _figure(out, r"flower final accuracy ([\d.]+)") > 0.2


def test_clock_bench_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "clock", "--ues", "40", "--rounds", "3", "--no-tracemalloc"]) == 0
    out = capsys.readouterr().out
    assert "vectorised rounds   3 of 3" in out and "events processed    0 " in out
    ue_rate = _figure(out, r"UE-rounds per s\s+([\d.e+]+)")
    wall = _figure(out, r"wall seconds\s+([\d.]+)")
    assert 120 / (wall + 5e-4) * (1 - 5e-4) <= ue_rate <= 120 / max(wall - 5e-4, 1e-9) * (1 + 5e-4)
    assert main(["bench", "clock", "--ues", "40", "--rounds", "3", "--no-tracemalloc", "--simpy"]) == 0
    out = capsys.readouterr().out
    assert "ues=40 rounds=3 clients/round=40" in out and "vectorised rounds   0 of 3" in out
    wall = _figure(out, r"wall seconds\s+([\d.]+)")
    events = _figure(out, r"events processed\s+(\d+)")
    assert events >= 3 * 40 * 3  # at least download, compute and upload per UE and round
    assert _figure(out, r"wall s per round\s+([\d.]+)") == pytest.approx(wall / 3, abs=1e-3)
    # events/s is the printed events over the unrounded wall time: within the rounding of both figures
    rate = _figure(out, r"events per second\s+([\d.e+]+)")
    assert events / (wall + 5e-4) * (1 - 5e-4) <= rate <= events / (wall - 5e-4) * (1 + 5e-4)


def test_vs_flower_bad_arguments_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "vs_flower", "--repeats", "0"])
    assert exc.value.code == 2 and "must be at least 1, got 0" in capsys.readouterr().err
    pytest.importorskip("flwr")
    # a config fedwave refuses: the child's message, no traceback, exit 1 (fedwave runs first)
    assert main(["bench", "vs_flower", "--repeats", "1", "--rounds", "1", "--executor", "banana"]) == 1
    err = capsys.readouterr().err
    assert "fedwave bench vs_flower:" in err and "engine.executor" in err and "Traceback" not in err
