"""Studies as Ray tasks: a local Ray started and stopped by the fixture gives the sequential results."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fedwave.cli import main
from fedwave.fl.study import run_study
from fedwave.report.study import load_study

BASE = {"data": {"max_train": 200}, "fl": {"num_ues": 3, "rounds": 3}, "model": {"name": "mlp"}}
VARY = {"codec": ["fp32", "uniform:8"]}


def _results(study: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    s = load_study(study)
    rounds = s.rounds.sort_values(["run_id", "round"]).reset_index(drop=True)
    events = s.ue_events.sort_values(["run_id", "round", "ue"]).reset_index(drop=True)
    return rounds, events


@pytest.fixture
def local_ray() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] = "0"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_study_equals_sequential_study(tmp_path: Path, local_ray: Any) -> None:
    run_study(tmp_path / "seq", BASE, VARY, 2)
    plan = run_study(tmp_path / "ray", BASE, VARY, 2, ray="local")
    assert local_ray.is_initialized()  # the fixture's Ray was used, and left to the fixture to stop
    seq, ray = _results(tmp_path / "seq"), _results(tmp_path / "ray")
    assert len(seq[0]) == 4 * 3 == len(plan) * 3
    pd.testing.assert_frame_equal(seq[0], ray[0])
    pd.testing.assert_frame_equal(seq[1], ray[1])


def test_ray_missing_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["compare", "--vary", "codec=fp32,uniform:8", "--study", str(tmp_path / "s"), "--ray"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'fedwave[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
