"""The results store: exact round-trips, atomic rounds, resume hygiene, spec checks, open errors."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedwave.errors import ConfigError, FedwaveError
from fedwave.records import RoundRecord, UEEvent
from fedwave.report.store import ResultsStore, StoreError
from fedwave.report.study import load_study

N_UES = 6  # as in conftest.py


SPEC = {"base": {"model": "mlp", "lr": 0.1}, "varied": ["codec"], "seeds": [0, 1]}


MakeRound = Callable[[str, int, int, float], tuple[RoundRecord, list[UEEvent]]]


def same(a: object, b: object) -> bool:
    """Exact equality where NaN equals NaN (and -0.0 equals 0.0: SQLite drops the sign of zero)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def new_store(tmp_path: Path, run_id: str = "r0") -> ResultsStore:
    store = ResultsStore(tmp_path / "study")
    store.ensure_study("s", SPEC)
    store.ensure_run(run_id, "codec=fp32", 0, {"codec": "fp32", "seed": 0}, {"codec": "fp32"})
    return store


def test_pragmas_wal_and_full_sync(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_round_trip_is_exact(make_round: MakeRound, tmp_path: Path) -> None:
    rounds = [make_round("codec=fp32", 3, r, float(r)) for r in range(4)]
    # awkward values: NaN accuracy, None epsilon, infinities, tiny/huge floats, numpy scalars
    rounds[1][0].accuracy = math.nan
    rounds[2][0].loss = math.inf
    rounds[3][0].extra = {"a": 1e-300, "b": -0.0, "c": math.nan}
    rounds[3][0].epsilon = math.nan  # round 1 keeps epsilon None: the two must stay apart
    rounds[0][1][0].snr_up_db = -math.inf
    rounds[0][1][1].rate_up_bps = 0.1 + 0.2
    with new_store(tmp_path) as store:
        for rec, events in rounds:
            store.commit_round("r0", rec, events, b"ck")
        back = store.round_records("r0")
        ev_back = store.event_records("r0")
        assert store.damage() == [], "NaN, None, -0.0 and infinities read back under the same digest"
    assert len(back) == 4
    assert back[1].epsilon is None and math.isnan(back[3].epsilon or 0.0)
    for (rec, _), got in zip(rounds, back):
        assert same(rec.as_dict() | {"extra": rec.extra}, got.as_dict() | {"extra": got.extra})
    flat = [e for _, events in rounds for e in events]
    assert len(ev_back) == len(flat)
    for e, got in zip(flat, ev_back):
        assert same(e.as_dict(), got.as_dict())


def test_numpy_scalars_are_stored_as_plain_values(tmp_path: Path) -> None:
    rec = RoundRecord(round=0, bytes_up=np.int64(123), accuracy=np.float32(0.5))  # type: ignore[arg-type]
    ev = UEEvent(round=0, ue=np.int64(2), status="arrived", bytes_up=np.int32(7))  # type: ignore[arg-type]
    with new_store(tmp_path) as store:
        store.commit_round("r0", rec, [ev], None)
        got = store.round_records("r0")[0]
        assert got.bytes_up == 123 and type(got.bytes_up) is int
        assert got.accuracy == 0.5
        assert store.event_records("r0")[0].ue == 2


def test_dataframes_have_method_seed_and_cumulative_bytes(study_dir: Path, synth: Any) -> None:
    METHODS, SEEDS, N_ROUNDS = synth.METHODS, synth.SEEDS, synth.N_ROUNDS
    study = load_study(study_dir)
    assert len(study.runs) == len(METHODS) * len(SEEDS)
    assert set(study.runs["status"]) == {"done"}
    r = study.rounds
    assert list(r.columns[:4]) == ["run_id", "method", "seed", "round"]
    assert len(r) == len(METHODS) * len(SEEDS) * N_ROUNDS
    assert "extra_grad_norm" in r.columns
    for _, g in r.groupby("run_id"):
        assert (g["cum_bytes_up"].to_numpy() == np.cumsum(g["bytes_up"].to_numpy())).all()
    ev = study.ue_events
    assert len(ev) == len(r) * N_UES
    assert list(ev.columns[:5]) == ["run_id", "method", "seed", "round", "ue"]
    one = study.events(r["run_id"].iloc[0], 3)
    assert len(one) == N_UES and set(one["round"]) == {3}


def test_store_reads_match_study(make_round: MakeRound, tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        rec, events = make_round("codec=fp32", 0, 0, 0.0)
        store.commit_round("r0", rec, events, None)
        assert len(store.rounds("r0")) == 1
        assert len(store.rounds("nope")) == 0
        assert len(store.ue_events("r0", 0)) == N_UES
        assert len(store.ue_events(round=1)) == 0
        assert list(store.runs()["run_id"]) == ["r0"]


class Unbindable:
    """Not bytes: hashing or binding it fails, mid-transaction (after the round and its events)."""


def _snapshot(store: ResultsStore) -> tuple[int, int, tuple[int, bytes] | None]:
    return len(store.rounds("r0")), len(store.ue_events("r0")), store.last_checkpoint("r0")


def test_commit_round_is_atomic_when_the_checkpoint_fails(make_round: MakeRound, tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        rec, events = make_round("codec=fp32", 0, 0, 0.0)
        store.commit_round("r0", rec, events, b"ck0")
        before = _snapshot(store)
        rec1, events1 = make_round("codec=fp32", 0, 1, rec.t_end)
        with pytest.raises((sqlite3.Error, TypeError)):
            store.commit_round("r0", rec1, events1, Unbindable())  # type: ignore[arg-type]
        assert _snapshot(store) == before
        # the store stays usable
        store.commit_round("r0", rec1, events1, b"ck1")
        assert _snapshot(store) == (2, 2 * N_UES, (1, b"ck1"))


def test_commit_round_is_atomic_when_inserting_events_fails(
    make_round: MakeRound, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with new_store(tmp_path) as store:
        rec, events = make_round("codec=fp32", 0, 0, 0.0)
        store.commit_round("r0", rec, events, b"ck0")
        before = _snapshot(store)
        original = ResultsStore._insert_events

        def insert_then_fail(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
            original(conn, rows)
            raise RuntimeError("simulated crash after the events were inserted")

        monkeypatch.setattr(ResultsStore, "_insert_events", staticmethod(insert_then_fail))
        rec1, events1 = make_round("codec=fp32", 0, 1, rec.t_end)
        with pytest.raises(RuntimeError):
            store.commit_round("r0", rec1, events1, b"ck1")
        # a failed re-commit of an existing round leaves the old version intact too
        changed = RoundRecord(round=0, accuracy=0.0)
        with pytest.raises(RuntimeError):
            store.commit_round("r0", changed, events[:2], b"ck-other")
        assert _snapshot(store) == before
        assert same(store.round_records("r0")[0].as_dict(), rec.as_dict())
        assert store.damage() == [], "a failed commit leaves the digests and the ledger as they were"
    # and a fresh connection sees the same
    assert len(load_study(tmp_path / "study").rounds) == 1


def test_recommitting_a_round_replaces_it(make_round: MakeRound, tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        rec, events = make_round("codec=fp32", 0, 0, 0.0)
        store.commit_round("r0", rec, events, b"a")
        rec.accuracy = 0.75
        store.commit_round("r0", rec, events[:2], b"b")
        assert len(store.rounds("r0")) == 1
        assert store.rounds("r0")["accuracy"].iloc[0] == 0.75
        assert list(store.ue_events("r0")["ue"]) == [0, 1]
        assert store.last_checkpoint("r0") == (0, b"b")


def test_checkpoint_none_keeps_the_previous_one(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        assert store.last_checkpoint("r0") is None
        store.commit_round("r0", RoundRecord(round=0), [], b"zero")
        store.commit_round("r0", RoundRecord(round=1), [], None)
        assert store.last_checkpoint("r0") == (0, b"zero")


def test_delete_rounds_after(make_round: MakeRound, tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        t = 0.0
        for r in range(5):
            rec, events = make_round("codec=fp32", 0, r, t)
            store.commit_round("r0", rec, events, f"ck{r}".encode())
            t = rec.t_end
        store.delete_rounds_after("r0", 2)
        assert list(store.rounds("r0")["round"]) == [0, 1, 2]
        assert set(store.ue_events("r0")["round"]) == {0, 1, 2}
        assert store.last_checkpoint("r0") is None  # the round-4 checkpoint is gone with its round


def test_events_of_another_round_are_refused(tmp_path: Path) -> None:
    with new_store(tmp_path) as store, pytest.raises(ValueError, match="round 1"):
        store.commit_round("r0", RoundRecord(round=1), [UEEvent(round=0, ue=0, status="arrived")], None)


def test_unknown_run_is_refused(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        with pytest.raises(StoreError, match="nope"):
            store.commit_round("nope", RoundRecord(round=0), [], None)
        with pytest.raises(StoreError, match="nope"):
            store.set_status("nope", "done")


def test_ensure_study_refuses_a_different_spec(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        store.ensure_study("s", {"seeds": [0, 1], "varied": ["codec"], "base": {"lr": 0.1, "model": "mlp"}})
        other = {**SPEC, "seeds": [0, 1, 2], "base": {"model": "mlp", "lr": 0.2}}
        with pytest.raises(ConfigError) as info:
            store.ensure_study("s", other)
        assert "seeds" in str(info.value) and "base.lr" in str(info.value)
        with pytest.raises(ConfigError, match="holds study 's'"):
            store.ensure_study("another", SPEC)
    # a new process resuming with the same spec is fine, with another is refused
    with ResultsStore(tmp_path / "study") as store:
        store.ensure_study("s", SPEC)
    with ResultsStore(tmp_path / "study") as store, pytest.raises(ConfigError):
        store.ensure_study("s", {**SPEC, "varied": ["codec", "policy"]})


def test_equal_values_match_and_nan_specs_resume(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "a") as store:
        store.ensure_study("a", {"lr": 1, "clip": math.nan})
        store.ensure_study("a", {"lr": 1.0, "clip": math.nan})  # 1 == 1.0 and the same NaN text
        store.ensure_run("r", "m", 0, {"x": math.nan}, {})
        assert store.ensure_run("r", "m", 0, {"x": math.nan}, {}) == "pending"


def test_ensure_run_and_status(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        assert store.ensure_run("r0", "codec=fp32", 0, {"seed": 0, "codec": "fp32"}, {"codec": "fp32"}) == (
            "pending"
        )
        store.set_status("r0", "running")
        store.set_status("r0", "failed", "boom")
        runs = store.runs()
        assert runs.loc[0, "status"] == "failed" and runs.loc[0, "error"] == "boom"
        assert runs.loc[0, "started"] and runs.loc[0, "finished"]
        assert store.ensure_run("r0", "codec=fp32", 0, {"codec": "fp32", "seed": 0}, {"codec": "fp32"}) == (
            "failed"
        )
        store.set_status("r0", "running")
        assert store.runs().loc[0, "error"] is None
        with pytest.raises(ConfigError, match=r"config\.codec"):
            store.ensure_run("r0", "codec=fp32", 0, {"codec": "fp16", "seed": 0}, {"codec": "fp32"})
        with pytest.raises(ConfigError):
            store.ensure_run("r0", "codec=fp32", 1, {"codec": "fp32", "seed": 0}, {"codec": "fp32"})
        with pytest.raises(ValueError):
            store.set_status("r0", "finished")


def test_open_errors_are_fedwave_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no study\.db"):
        load_study(tmp_path)
    with pytest.raises(StoreError, match="no such directory"):
        load_study(tmp_path / "missing")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        ResultsStore(a_file)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "study.db").write_bytes(b"this is not an sqlite database at all" * 100)
    with pytest.raises(FedwaveError, match=r"study\.db"):
        ResultsStore(corrupt)
    with pytest.raises(FedwaveError, match=r"study\.db"):
        load_study(corrupt)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "study.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StoreError, match="not a fedwave study"):
        ResultsStore(foreign)
    with pytest.raises(StoreError, match="not a fedwave study"):
        load_study(foreign)
    empty = tmp_path / "empty"
    ResultsStore(empty).close()
    with pytest.raises(StoreError, match="no study yet"):
        load_study(empty)


FLOATS = st.floats(allow_nan=True, allow_infinity=True)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultsStore]:
    with ResultsStore(tmp_path_factory.mktemp("prop")) as store:
        store.ensure_study("p", {})
        store.ensure_run("r", "m", 0, {}, {})
        yield store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    t_end=FLOATS,
    accuracy=FLOATS,
    bytes_up=INT64,
    epsilon=st.none() | FLOATS,
    extra=st.dictionaries(st.text(max_size=8), FLOATS, max_size=3),
    rate=FLOATS,
    status=st.sampled_from(["arrived", "dropped", "lost", "skipped", "rejected", "undecodable"]),
)
def test_round_trip_property(
    prop_store: ResultsStore,
    t_end: float,
    accuracy: float,
    bytes_up: int,
    epsilon: float | None,
    extra: dict[str, float],
    rate: float,
    status: str,
) -> None:
    rec = RoundRecord(
        round=0, t_end=t_end, accuracy=accuracy, bytes_up=bytes_up, epsilon=epsilon, extra=extra
    )
    ev = UEEvent(round=0, ue=0, status=status, rate_up_bps=rate, bytes_up=bytes_up)
    prop_store.commit_round("r", rec, [ev], bytes([1, 2]))  # replaces the previous example's round 0
    got, got_ev = prop_store.round_records("r")[0], prop_store.event_records("r")[0]
    assert same(rec.as_dict() | {"extra": rec.extra}, got.as_dict() | {"extra": got.extra})
    assert (got.epsilon is None) == (epsilon is None)  # None and NaN stay apart
    assert same(ev.as_dict(), got_ev.as_dict())
    assert prop_store.damage() == [], "the digest of the values read back equals the one committed"
