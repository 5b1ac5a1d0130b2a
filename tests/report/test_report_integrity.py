"""Integrity of the store: every stored value is under a digest, checkpoints under a SHA-256, and the
ledger notices rounds the database lost, with no false alarm for legitimate deletions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from fedwave.records import RoundRecord, UEEvent
from fedwave.report import ledger
from fedwave.report.errors import DamagedStudyError
from fedwave.report.schema import EVENT_COLUMNS, ROUND_COLUMNS
from fedwave.report.store import ResultsStore

MakeRound = Callable[[str, int, int, float], tuple[RoundRecord, list[UEEvent]]]


def _store(tmp_path: Path, make_round: MakeRound, rounds: int = 3) -> ResultsStore:
    store = ResultsStore(tmp_path / "study")
    store.ensure_study("s", {})
    store.ensure_run("r0", "codec=fp32", 0, {}, {})
    store.ensure_run("r1", "codec=qsgd:16", 1, {}, {})
    t = 0.0
    for rnd in range(rounds):
        for run, method in (("r0", "codec=fp32"), ("r1", "codec=qsgd:16")):
            rec, events = make_round(method, 0, rnd, t)
            store.commit_round(run, rec, events, f"ckpt {run} {rnd}".encode())
        t = rec.t_end
    return store


def _changed(value: object) -> object:
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 1.5
    return value + 1  # type: ignore[operator]


def _sql(store: ResultsStore, sql: str, params: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(store.db_path)
    with conn:
        assert conn.execute(sql, params).rowcount == 1, sql
    conn.close()


def test_every_stored_column_is_under_the_round_digest(tmp_path: Path, make_round: MakeRound) -> None:
    with _store(tmp_path, make_round) as store:
        assert store.damage() == []
        where = "WHERE run_id = 'r1' AND round = 1"
        for col in [c.name for c in ROUND_COLUMNS] + ["extra"]:
            old = store._conn.execute(f"SELECT {col} FROM rounds {where}").fetchone()[0]
            new = json.dumps({"grad_norm": 0.5}) if col == "extra" else _changed(old)
            _sql(store, f"UPDATE rounds SET {col} = ? {where}", (new,))
            found = store.damage()
            assert [(d.run_id, d.kind) for d in found] == [("r1", "changed")], col
            assert "round 1 no longer matches the digest" in found[0].what, col
            _sql(store, f"UPDATE rounds SET {col} = ? {where}", (old,))
            assert store.damage() == [], f"restoring {col} restores the digest"
        for col in [c.name for c in EVENT_COLUMNS] + ["ue"]:
            old = store._conn.execute(f"SELECT {col} FROM ue_events {where} AND ue = 2").fetchone()[0]
            new = 99 if col == "ue" else _changed(old)
            _sql(store, f"UPDATE ue_events SET {col} = ? {where} AND ue = 2", (new,))
            assert [(d.run_id, d.kind) for d in store.damage()] == [("r1", "changed")], col
            back = f"UPDATE ue_events SET {col} = ? {where} AND ue = ?"
            _sql(store, back, (old, 99 if col == "ue" else 2))
        assert store.damage() == []
        # a round moved to another number, and a deleted event, are changes too
        _sql(store, "UPDATE rounds SET round = 7 WHERE run_id = 'r0' AND round = 2")
        _sql(store, "DELETE FROM ue_events WHERE run_id = 'r1' AND round = 0 AND ue = 0")
        found = [(d.run_id, d.what.split(":")[0]) for d in store.damage()]
        assert found == [
            ("r0", "round 7 no longer matches the digest taken at commit"),
            ("r0", "UE events of round 2 have no round row"),
            ("r1", "round 0 no longer matches the digest taken at commit"),
        ]


def test_checkpoint_changed_on_disk_is_refused(tmp_path: Path, make_round: MakeRound) -> None:
    with _store(tmp_path, make_round) as store:
        assert store.last_checkpoint("r1") == (2, b"ckpt r1 2")
        _sql(store, "UPDATE checkpoints SET blob = ? WHERE run_id = 'r1'", (b"ckpt r1 3",))
        with pytest.raises(DamagedStudyError) as info:
            store.last_checkpoint("r1")
        message = str(info.value)
        assert "run r1 (codec=qsgd:16, seed 1): the checkpoint taken after round 2 no longer" in message
        assert message.endswith(f"fedwave study restart {store.study_dir} r1")
        assert [(d.run_id, d.kind) for d in store.damage()] == [("r1", "checkpoint")]
        assert store.last_checkpoint("r0") == (2, b"ckpt r0 2")


def test_ledger_counts_committed_rounds_and_names_lost_ones(tmp_path: Path, make_round: MakeRound) -> None:
    with _store(tmp_path, make_round) as store:
        entries = {e.run_id: e for e in ledger.read_entries(store.study_dir)}
        assert (entries["r0"].rounds, entries["r0"].last_round, entries["r1"].seed) == (3, 2, 1)
        # a legitimate resume deletes rounds after the checkpoint: no alarm, the ledger follows
        store.delete_rounds_after("r0", 0)
        assert store.damage() == []
        assert {e.run_id: e.rounds for e in ledger.read_entries(store.study_dir)} == {"r0": 1, "r1": 3}
        # rounds vanishing behind the store's back (a lost -wal file) are named with both counts
        conn = sqlite3.connect(store.db_path)
        with conn:
            conn.execute("DELETE FROM ue_events WHERE run_id = 'r1' AND round >= 1")
            conn.execute("DELETE FROM rounds WHERE run_id = 'r1' AND round >= 1")
        conn.close()
        found = store.damage()
        assert [(d.run_id, d.kind) for d in found] == [("r1", "lost")]
        assert found[0].what.startswith("had 3 rounds committed (rounds 0-2), the database holds 1:")
        store.set_status("r1", "failed", "lost rounds")
        store.reset_run("r1")
        assert store.damage() == []
        run = store.runs().set_index("run_id").loc["r1"]
        assert (run["status"], run["error"], run["started"]) == ("pending", None, None)
        assert store.last_checkpoint("r1") is None and store.rounds("r1").empty
        assert [e.run_id for e in ledger.read_entries(store.study_dir)] == ["r0"]


def test_unreadable_ledger_file_is_named(tmp_path: Path, make_round: MakeRound) -> None:
    with _store(tmp_path, make_round, rounds=1) as store:
        path = ledger.entry_path(store.study_dir, "r0")
        path.write_text("{not json")
        with pytest.raises(Exception, match=f"ledger file {path} is unreadable"):
            store.damage()


def test_ledger_file_names_are_safe_for_any_run_id(tmp_path: Path) -> None:
    names = {ledger.entry_path(tmp_path, rid).name for rid in ("a/b", "a|b", "a b", "..", "", "a/b ")}
    assert len(names) == 6
    assert all("/" not in n and " " not in n and not n.startswith(".") for n in names)
