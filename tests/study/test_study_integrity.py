"""Damaged study stores fail loudly and recover: altered checkpoints, changed values, a lost -wal file,
a moved directory and an old schema, each on a real small study, ending with results equal to an
uninterrupted study."""

from __future__ import annotations

import hashlib
import io
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from fedwave.cli import main
from fedwave.fl.study import RunSpec
from fedwave.records import RoundRecord
from fedwave.report.errors import DamagedStudyError, StoreError
from fedwave.report.study import load_study


def _run_ids(study: Path) -> list[tuple[str, str, int]]:
    """``(run_id, method, seed)`` in plan order (method as planned: fp32 first, then seeds)."""
    with sqlite3.connect(study / "study.db") as conn:
        rows = conn.execute("SELECT run_id, method, seed FROM runs ORDER BY rowid").fetchall()
    conn.close()
    return [(str(r), str(m), int(s)) for r, m, s in rows]


def _execute(study: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    """Change study.db behind fedwave's back (as a disk error or a person would); rows changed."""
    conn = sqlite3.connect(study / "study.db")
    with conn:
        n = conn.execute(sql, params).rowcount
    conn.close()
    return n


def _alter_checkpoint(study: Path, run_id: str) -> int:
    """Add 0.05 to every weight of the global model inside the run's checkpoint; returns its round."""
    conn = sqlite3.connect(study / "study.db")
    rnd, blob = conn.execute("SELECT round, blob FROM checkpoints WHERE run_id = ?", (run_id,)).fetchone()
    state = torch.load(io.BytesIO(blob), weights_only=True)
    model = state["driver"]["bs"]["model"]
    for key, tensor in model.items():
        if tensor.is_floating_point():
            model[key] = tensor + 0.05
    buf = io.BytesIO()
    torch.save(state, buf)
    with conn:
        conn.execute("UPDATE checkpoints SET blob = ? WHERE run_id = ?", (buf.getvalue(), run_id))
    conn.close()
    return int(rnd)


def test_altered_checkpoint_is_refused_and_restart_recovers(
    tmp_path: Path, kit: ModuleType, reference: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "study"
    kit.interrupt(study, after=6)  # run 1 done, run 2 (fp32, seed 1) stopped after its round 1
    (first, _, _), (victim, method, seed) = _run_ids(study)
    assert (method, seed) == ("codec=fp32", 1)
    assert _alter_checkpoint(study, victim) == 1
    capsys.readouterr()

    assert kit.compare(study) == 2
    err = capsys.readouterr().err
    assert f"run {victim} (codec=fp32, seed 1): the checkpoint taken after round 1 no longer matches" in err
    assert f"fedwave study restart {study} {victim}\n" in err
    assert "Traceback" not in err
    assert _rounds_without_wal(study) == {first: 4, victim: 2}, "nothing ran after the damage was found"

    assert main(["study", "restart", str(study), victim, "--no-report"]) == 0
    out = capsys.readouterr().out
    assert f"{victim} codec=fp32" in out and "restarted, finished" in out
    assert kit.compare(study) == 0  # the two runs never started
    kit.assert_same_results(study, reference)


def test_changed_values_are_named_by_run_and_round_and_restart_recovers(
    copy_of: Any, kit: ModuleType, reference: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    study = copy_of(reference["dir"])
    runs = _run_ids(study)
    (a, _, _), _, (b, b_method, b_seed), _ = runs
    assert _execute(study, "UPDATE rounds SET accuracy = 0.99 WHERE run_id = ? AND round = 2", (a,)) == 1
    changed_ev = "UPDATE ue_events SET bytes_up = bytes_up + 1 WHERE run_id = ? AND round = 1 AND ue = ?"
    with sqlite3.connect(study / "study.db") as conn:
        ue = conn.execute("SELECT min(ue) FROM ue_events WHERE run_id = ? AND round = 1", (b,)).fetchone()[0]
    conn.close()
    assert _execute(study, changed_ev, (b, ue)) == 1
    (study / "report.html").unlink(missing_ok=True)
    capsys.readouterr()

    assert main(["report", str(study)]) == 2
    err = capsys.readouterr().err
    assert f"run {a} (codec=fp32, seed 0): round 2 no longer matches the digest" in err
    assert f"run {b} ({b_method}, seed {b_seed}): round 1 no longer matches the digest" in err
    assert f"fedwave study restart {study} {b} {a}\n" in err  # runs in method order: ef(...) < fp32
    assert not (study / "report.html").exists()
    with pytest.raises(DamagedStudyError) as info:
        load_study(study)
    assert sorted(info.value.run_ids) == sorted([a, b])
    # resuming refuses too, and the table is not printed
    assert kit.compare(study) == 2
    captured = capsys.readouterr()
    assert "round 2 no longer matches" in captured.err and "final accuracy" not in captured.out
    assert main(["study", "verify", str(study)]) == 2

    assert main(["study", "restart", str(study), "--damaged", "--no-report"]) == 0
    assert main(["study", "verify", str(study)]) == 0
    assert "sound. 4 runs, 16 rounds with" in capsys.readouterr().out
    kit.assert_same_results(study, reference)


def _snapshot(src: Path, dest: Path) -> None:
    """Copy a study directory's files as a process killed at this instant would leave them."""
    dest.mkdir()
    for name in ("study.db", "study.db-wal", "study.yaml"):
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    if (src / "ledger").is_dir():
        shutil.copytree(src / "ledger", dest / "ledger")


def _rounds_without_wal(study: Path) -> dict[str, int]:
    """Rounds per run that study.db holds on its own (measured with sqlite3, not fedwave)."""
    if not (study / "study.db").exists() or (study / "study.db").stat().st_size == 0:
        return {}
    with sqlite3.connect(study / "study.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        counts = {}
        if "rounds" in tables:
            rows = conn.execute("SELECT run_id, count(*) FROM rounds GROUP BY run_id")
            counts = {str(r): int(n) for r, n in rows}
    conn.close()
    return counts


@pytest.mark.parametrize("checkpointed", [True, False], ids=["db-holds-run-1", "db-holds-nothing"])
def test_lost_wal_file_is_detected_and_named(
    tmp_path: Path,
    kit: ModuleType,
    reference: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    checkpointed: bool,
) -> None:
    """Kill a study mid-run (a snapshot of its files at that instant), delete its -wal file, resume."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    seen: list[tuple[str, int]] = []

    def on_commit(run: RunSpec, record: RoundRecord) -> None:
        seen.append((run.run_id, record.round))
        if checkpointed and len(seen) == 4:  # SQLite copies the WAL into study.db now and then
            with sqlite3.connect(live / "study.db") as conn:
                assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
            conn.close()
        if len(seen) == 6:  # run 2 has committed rounds 0 and 1
            _snapshot(live, crashed)

    kit.interrupt(live, after=7, on_commit=on_commit)
    (crashed / "study.db-wal").unlink()
    holds = _rounds_without_wal(crashed)
    run1, run2 = seen[0][0], seen[5][0]
    assert holds == ({run1: 4} if checkpointed else {})
    capsys.readouterr()

    assert kit.compare(crashed) == 2
    err = capsys.readouterr().err
    lost = "rounds committed (rounds 0-{}), the database holds 0"
    assert f"run {run2} (codec=fp32, seed 1): had 2 {lost.format(1)}" in err
    assert "study.db-wal" in err and "Traceback" not in err
    if checkpointed:
        assert f"run {run1}" not in err.split("Restart")[0], "run 1 is intact in study.db"
    else:
        assert f"run {run1} (codec=fp32, seed 0): had 4 {lost.format(3)}" in err
    assert _rounds_without_wal(crashed) == holds, "nothing was computed after the loss was found"

    assert main(["study", "restart", str(crashed), "--damaged", "--no-report"]) == 0
    assert kit.compare(crashed) == 0
    kit.assert_same_results(crashed, reference)


def test_moved_study_resumes_and_reports_identically(
    tmp_path: Path, kit: ModuleType, reference: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "a" / "first"
    kit.interrupt(first, after=6)
    moved = tmp_path / "b" / "second"
    moved.parent.mkdir()
    shutil.move(first, moved)
    assert not first.exists()
    assert kit.compare(moved) == 0, capsys.readouterr().err
    kit.assert_same_results(moved, reference)
    assert load_study(moved).name == "first", "the name recorded at creation stays"
    # a finished study moved again: nothing to do, and its report is written from the new place
    again = tmp_path / "c"
    moved.rename(again)
    capsys.readouterr()
    assert kit.compare(again) == 0
    assert capsys.readouterr().out.count("done already") == 4
    assert main(["report", str(again)]) == 0
    assert (again / "report.html").is_file()
    kit.assert_same_results(again, reference)


def _downgrade_to_v1(study: Path) -> None:
    """Make the study look as fedwave with schema version 1 wrote it (no digests, no ledger)."""
    conn = sqlite3.connect(study / "study.db")
    with conn:
        conn.execute("ALTER TABLE rounds DROP COLUMN digest")
        conn.execute("ALTER TABLE checkpoints DROP COLUMN sha256")
        # fields the records gained after schema 1 (the upgrade adds them with their defaults)
        for table, column in (("rounds", "time_queue"), ("rounds", "silent"), ("rounds", "rolled_back")):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("ALTER TABLE ue_events DROP COLUMN behaviour")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    shutil.rmtree(study / "ledger")


def test_old_schema_is_refused_clearly_then_upgraded(
    copy_of: Any, kit: ModuleType, reference: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    study = copy_of(reference["dir"])
    _downgrade_to_v1(study)
    capsys.readouterr()
    assert main(["report", str(study)]) == 2
    err = capsys.readouterr().err
    assert "has schema version 1, written by an older fedwave" in err
    assert f"Upgrade it once with: fedwave study upgrade {study}" in err and "Traceback" not in err

    assert main(["study", "upgrade", str(study)]) == 0
    assert "upgraded from schema version 1 to 2" in capsys.readouterr().out
    assert len(list((study / "ledger").glob("*.json"))) == 4
    assert main(["study", "verify", str(study)]) == 0
    assert main(["study", "upgrade", str(study)]) == 0
    assert "already schema version 2" in capsys.readouterr().out
    kit.assert_same_results(study, reference)  # digests equal those written at commit

    _execute(study, "PRAGMA user_version = 7")
    with pytest.raises(StoreError, match="schema version 7, written by a newer fedwave"):
        load_study(study)


def test_checkpoint_that_cannot_be_restored_names_the_run_and_restart(
    tmp_path: Path, kit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """A blob under a matching SHA-256 that is no checkpoint of this run (another fedwave, say)."""
    study = tmp_path / "study"
    kit.interrupt(study, after=2)
    ((run, _, _),) = _run_ids(study)
    for blob in (b"not a torch file", _torch_bytes({"format": 1, "driver": {}, "t_now": 0.0})):
        _execute(
            study,
            "UPDATE checkpoints SET blob = ?, sha256 = ? WHERE run_id = ?",
            (blob, hashlib.sha256(blob).hexdigest(), run),
        )
        capsys.readouterr()
        assert kit.compare(study) == 2
        err = capsys.readouterr().err
        assert f"run {run} (codec=fp32, seed 0): the checkpoint taken after round 1 cannot be restored" in err
        assert err.rstrip().endswith(f"Restart this run from round 0 (the other runs are kept): "
                                     f"fedwave study restart {study} {run}")  # fmt: skip
        assert "Traceback" not in err


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "vary,switch",
    [
        ({"dp.noise_multiplier": ["0.5", "1"]}, "dp.level is 'off'"),
        ({"adversary.fraction": ["0", "0.2"]}, "adversary.attack is 'none'"),
        ({"faults.fraction": ["0.1", "0.2"]}, "faults.kind is 'none'"),
    ],
)
def test_varying_a_key_of_a_switched_off_section_is_refused(vary: dict[str, list[str]], switch: str) -> None:
    from fedwave.config import config_data
    from fedwave.errors import ConfigError
    from fedwave.fl.study import plan_study

    with pytest.raises(ConfigError, match=switch):
        plan_study(config_data(None, ["fl.rounds=1"]), vary, 1)
    section = next(iter(vary)).split(".")[0]
    on = {"dp": "dp.level=sample", "adversary": "adversary.attack=sign_flip", "faults": "faults.kind=nan"}
    assert len(plan_study(config_data(None, ["fl.rounds=1", on[section]]), vary, 1)) == 2
