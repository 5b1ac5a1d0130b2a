"""Studies: a study killed at random moments resumes to results identical to an uninterrupted one."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fedwave.cli import main
from fedwave.report.study import load_study

#: Two codecs (one with error-feedback state) and two fading processes (i.i.d., and Gauss-Markov, whose
#: state travels in the checkpoints), all with moving UEs.
GRID = [
    "--vary",
    "codec=fp32,ef(topk:0.2)",
    "--vary",
    "wireless.cell.fading.process=iid,gauss_markov",
    "--seeds",
    "1",
    "--no-report",
    "-o",
    "wireless.cell.fading.coherence_time_s=0.005",
    "-o",
    "wireless.cell.mobility.model=random_waypoint",
    "-o",
    "data.max_train=240",
    "-o",
    "fl.num_ues=4",
    "-o",
    "fl.rounds=5",
    "-o",
    "model.name=mlp",
]


def _cmd(study: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fedwave.cli", "compare", *GRID, "--study", str(study), *extra]


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = dict(
                    line.split(":\t", 1)
                    for line in (entry / "status").read_text().splitlines()
                    if ":\t" in line
                )
            except OSError:
                continue
            if fields.get("PPid", "").strip() == str(pid) and not fields.get("State", "").startswith("Z"):
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def _results(study: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    s = load_study(study)
    rounds = s.rounds.sort_values(["run_id", "round"]).reset_index(drop=True)
    events = s.ue_events.sort_values(["run_id", "round", "ue"]).reset_index(drop=True)
    return rounds, events


def _rounds_stored(study: Path) -> int:
    try:
        with sqlite3.connect(f"file:{study / 'study.db'}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0])
    except sqlite3.Error:
        return 0


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C back to its default, so the study's Python turns it into
    KeyboardInterrupt even when this test process inherited it ignored (a test runner, an earlier test
    that ran Flower's simulation in this worker); otherwise the SIGINT kill would be a no-op."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill_when(study: Path, target_rounds: int, extra_s: float, sig: int, *extra: str) -> int:
    """Start the study, wait until ``target_rounds`` rounds are stored, wait ``extra_s``, send ``sig``.

    Whatever children the study had when the signal was sent must be gone soon after (no orphans).
    """
    proc = subprocess.Popen(
        _cmd(study, *extra),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and _rounds_stored(study) < target_rounds and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(extra_s)
    children = []
    if proc.poll() is None:
        children = _children(proc.pid) if sys.platform.startswith("linux") else []
        proc.send_signal(sig)
    proc.wait(timeout=120)
    gone_by = time.monotonic() + 20
    while any(_alive(c) for c in children) and time.monotonic() < gone_by:
        time.sleep(0.05)
    orphans = [c for c in children if _alive(c)]
    for c in orphans:  # leave nothing behind, then fail
        os.kill(c, signal.SIGKILL)
    assert not orphans, f"processes {orphans} outlived the killed study coordinator"
    return _rounds_stored(study)


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_study_resumes_to_identical_results(tmp_path: Path, workers: int) -> None:
    """Also with ``--workers 2``: the reference is the sequential study, and killing the coordinator
    (its workers are then found among its children) leaves no worker behind."""
    extra = ("--workers", str(workers)) if workers > 1 else ()
    ref = tmp_path / "ref"
    subprocess.run(_cmd(ref), check=True, env=_env(), capture_output=True, timeout=300)
    expected_rounds, expected_events = _results(ref)
    total = 4 * 5
    assert len(expected_rounds) == total

    study = tmp_path / "killed"
    rng = random.Random(1234)
    # Kill points: during start-up, then at increasing numbers of stored rounds, each followed by a
    # random sub-round delay so the signal lands anywhere, database writes included.
    targets = [0, *sorted(rng.sample(range(1, total), 5))]
    stored = []
    for i, target in enumerate(targets):
        sig = signal.SIGINT if i == 3 else signal.SIGKILL  # one Ctrl-C, the rest kill -9
        stored.append(_kill_when(study, target, rng.uniform(0.0, 0.05), sig, *extra))
    assert sum(1 for n in stored if n < total) >= 4, f"kills should land mid-study; stored rounds: {stored}"
    final = subprocess.run(_cmd(study, *extra), env=_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    rounds, events = _results(study)
    pd.testing.assert_frame_equal(rounds, expected_rounds)
    pd.testing.assert_frame_equal(events, expected_events)
    # Running the finished study again does no work and changes nothing.
    again = subprocess.run(_cmd(study, *extra), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    done_lines = [line for line in again.stdout.splitlines() if line.rstrip().endswith("done already")]
    assert len(done_lines) == 4, again.stdout  # one line per run, none computed again
    pd.testing.assert_frame_equal(_results(study)[0], expected_rounds)


@pytest.mark.parametrize(
    ("vary", "needle"),
    [
        ("fl.rnds=1,2", "Did you mean 'fl.rounds'"),
        ("fl.rounds=0,3", "greater than or equal to 1"),
        ("codec=fp32,nonsense:3", "unknown codec 'nonsense:3'"),
        ("codec", "key=v1,v2"),
    ],
)
def test_bad_vary_fails_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vary: str, needle: str
) -> None:
    study = tmp_path / "s"
    assert main(["compare", "--vary", vary, "--study", str(study)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not study.exists()


def test_vary_values_keep_commas_inside_parentheses() -> None:
    from fedwave.fl.study import parse_vary

    assert parse_vary(["codec=fp32,ef(topk:0.1),uniform:8"]) == {
        "codec": ["fp32", "ef(topk:0.1)", "uniform:8"]
    }
