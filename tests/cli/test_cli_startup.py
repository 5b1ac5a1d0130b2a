"""``fedwave.startup.imports``: the collector paused during a command's imports, what exists then frozen,
the collector running again after; a plain block outside the ``fedwave`` command's process."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


def test_the_fedwave_command_imports_torch_paused_and_trains_with_torch_frozen(tmp_path: Path) -> None:
    # `fedwave run` in its own process: torch is imported inside the pause (not before the command), the
    # collector is back on for the rounds, and torch's objects stay out of its collections.
    code = """
import atexit, gc, sys
import fedwave.cli as cli
assert "torch" not in sys.modules
real = gc.freeze
def freeze():
    at_freeze = (gc.isenabled(), "torch" in sys.modules)
    real()
    def report():  # registered after the quick exit's handler: it runs first
        tracked = len(gc.get_objects())
        print(*at_freeze, gc.isenabled(), gc.get_freeze_count(), tracked, file=sys.stderr)
    atexit.register(report)
gc.freeze = freeze
sys.argv = ["fedwave", "run", "-q", "-o", "fl.rounds=1", "-o", "fl.num_ues=3", "--out", sys.argv[1]]
cli.entry()
"""
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    enabled_at_freeze, torch_at_freeze, enabled_after, frozen, tracked = proc.stderr.split()[-5:]
    assert (enabled_at_freeze, torch_at_freeze, enabled_after) == ("False", "True", "True")
    assert int(frozen) > 100_000 > int(tracked)  # torch's objects frozen, few left to collections
