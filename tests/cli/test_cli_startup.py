"""``fedwave.startup.imports``: the collector paused during a command's imports, what exists then frozen,
the collector running again after; a plain block outside the ``fedwave`` command's process."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fedwave import startup


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in the ``fedwave`` command's process (after ``pause_during_imports``); unfrozen after."""
    monkeypatch.setattr(startup, "_ENABLED", [])
    startup.pause_during_imports()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()


def test_imports_pause_the_collector_then_freeze_what_exists(paused: None) -> None:
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with startup.imports():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]  # tracked objects made inside the block
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(made)
    collectable = {id(o) for o in gc.get_objects()}  # the frozen ones are left out of every generation
    assert all(gc.is_tracked(m) and id(m) not in collectable for m in made)


def test_an_error_in_the_block_still_turns_the_collector_back_on(paused: None) -> None:
    with pytest.raises(ImportError), startup.imports():
        raise ImportError("no such module")
    assert gc.isenabled() and gc.get_freeze_count() > 0


def test_a_disabled_collector_is_left_alone(paused: None) -> None:
    gc.disable()
    with startup.imports():
        pass
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_outside_the_command_the_block_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "_ENABLED", [])
    with startup.imports():
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_fedwave_command_runs_its_rounds_with_the_collector_on_and_torch_frozen(tmp_path: object) -> None:
    # `fedwave run` in its own process: during the rounds the collector runs, and torch's objects (made
    # by the imports) are frozen, so no collection walks over them.
    code = """
import gc, sys
import fedwave.cli as cli
import fedwave.fl.run as fr
real = fr.Simulation.run_rounds
def run_rounds(self, rounds):
    tracked = len(gc.get_objects())
    print("enabled", gc.isenabled(), "frozen", gc.get_freeze_count(), "tracked", tracked, file=sys.stderr)
    return real(self, rounds)
fr.Simulation.run_rounds = run_rounds
sys.argv = ["fedwave", "run", "-q", "-o", "fl.rounds=1", "-o", "fl.num_ues=3", "--out", sys.argv[1]]
cli.entry()
"""
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    words = proc.stderr.split()
    enabled, frozen, tracked = words[1], int(words[3]), int(words[5])
    assert enabled == "True"
    assert frozen > 100_000 > tracked  # torch's objects frozen, few left to collections
