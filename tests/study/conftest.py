"""A real small study (fedwave compare: 2 codecs x 2 seeds x 4 rounds on digits), made once per session.

Tests copy it (never change the original) or rebuild parts of it, interrupted, to compare with.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from fedwave.cli import main
from fedwave.config import apply_overrides
from fedwave.fl.study import RunSpec, parse_vary, run_study
from fedwave.records import RoundRecord

OVERRIDES = [
    "data.max_train=240",
    "fl.num_ues=4",
    "fl.rounds=4",
    "model.name=mlp",
    "wireless.cell.radius_m=250",
]
VARY = ["codec=fp32,ef(topk:0.2)"]
SEEDS = 2
ROUNDS = 4
#: ``fedwave compare`` arguments of the study, without ``--study``.
GRID = [arg for v in VARY for arg in ("--vary", v)] + ["--seeds", str(SEEDS), "--no-report"]
GRID += [arg for o in OVERRIDES for arg in ("-o", o)]


def compare(study: Path, *extra: str) -> int:
    """``fedwave compare <the grid> --study STUDY``, in this process; its exit status."""
    return main(["compare", *GRID, "--study", str(study), *extra])


def results(study: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's rounds and UE events, sorted by run, round (and UE), read straight from study.db."""
    with sqlite3.connect(f"file:{study / 'study.db'}?mode=ro", uri=True) as conn:
        rounds = pd.read_sql("SELECT * FROM rounds ORDER BY run_id, round", conn)
        events = pd.read_sql("SELECT * FROM ue_events ORDER BY run_id, round, ue", conn)
    conn.close()
    return rounds, events


Tick = Callable[[RunSpec, RoundRecord], None]


def interrupt(study: Path, after: int, on_commit: Tick | None = None) -> None:
    """Run the study in this process and stop it (as Ctrl-C does) once ``after`` rounds are committed.

    ``on_commit`` sees every committed round first (to snapshot files, say).
    """
    base = apply_overrides({}, OVERRIDES)
    count = {"n": 0}

    def tick(run: RunSpec, record: RoundRecord) -> None:
        count["n"] += 1
        if on_commit is not None:
            on_commit(run, record)
        if count["n"] >= after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(study, base, parse_vary(VARY), SEEDS, on_round=tick)


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The finished study made by one uninterrupted ``fedwave compare``: its directory (read-only: copy
    it), rounds and events."""
    study = tmp_path_factory.mktemp("reference") / "study"
    assert compare(study) == 0
    rounds, events = results(study)
    assert len(rounds) == 2 * SEEDS * ROUNDS
    return {"dir": study, "rounds": rounds, "events": events}


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    """``copy_of(study)``: a private copy of a study directory under this test's tmp_path."""

    def copy(study: Path) -> Path:
        dest = tmp_path / "copy"
        shutil.copytree(study, dest)
        return dest

    return copy


def assert_same_results(study: Path, reference: dict[str, Any]) -> None:
    """Every stored round and UE event of ``study`` equals the reference study's, value for value."""
    rounds, events = results(study)
    # compare by column name: an upgraded database holds the newer record columns at the end
    pd.testing.assert_frame_equal(rounds, reference["rounds"][list(rounds.columns)])
    pd.testing.assert_frame_equal(events, reference["events"][list(events.columns)])
    assert set(rounds.columns) == set(reference["rounds"].columns)
    assert set(events.columns) == set(reference["events"].columns)


@pytest.fixture(scope="session")
def kit() -> ModuleType:
    """This module: :func:`compare`, :func:`results`, :func:`interrupt`, :func:`assert_same_results`
    and the grid's constants, for the test files."""
    return sys.modules[__name__]
