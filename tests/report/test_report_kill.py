"""kill -9 a process that commits rounds in a loop: the store never holds a partial round.

The child resumes from its checkpoint like a real run (delete rounds after it, go on), commits rounds
whose number of UE events varies, each with a 100 kB checkpoint naming its round, and is killed with
SIGKILL at a random moment. After every kill the database must hold whole rounds only, each matching
its digest, and the ledger may not count a round the database lacks (no false alarm of lost rounds).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedwave.report.store import ResultsStore

CHILD = r"""
import sys
from fedwave.records import RoundRecord, UEEvent
from fedwave.report.store import ResultsStore

store = ResultsStore(sys.argv[1])
store.ensure_study("kill", {"purpose": "kill -9 test"})
store.ensure_run("r", "codec=fp32", 0, {"codec": "fp32"}, {})
ck = store.last_checkpoint("r")
start = 0 if ck is None else ck[0] + 1
store.delete_rounds_after("r", start - 1)
store.set_status("r", "running")
print("ready", start, flush=True)
rnd = start
while True:
    n = 3 + rnd % 9
    rec = RoundRecord(round=rnd, t_end=float(rnd + 1), selected=n, arrived=n, bytes_up=1000 * n)
    events = [UEEvent(round=rnd, ue=u, status="arrived", bytes_up=1000) for u in range(n)]
    store.commit_round("r", rec, events, f"{rnd}:".encode() + bytes(100_000))
    rnd += 1
"""

KILLS = 4


def check_whole_rounds(study_dir: Path) -> int:
    """Assert the invariants of a store of whole rounds; return the number of stored rounds."""
    with ResultsStore(study_dir) as store:
        rounds = store.rounds("r")
        events = store.ue_events("r")
        ck = store.last_checkpoint("r")
        # digests and checksums match, and the ledger never counts more rounds than the database holds
        assert store.damage() == []
    if rounds.empty:
        assert ck is None and events.empty
        return 0
    numbers = rounds["round"].tolist()
    assert numbers == list(range(len(numbers))), "rounds must be contiguous from 0"
    per_round = events.groupby("round")["ue"].count()
    for rec in rounds.itertuples(index=False):
        assert per_round.get(rec.round, 0) == rec.selected == 3 + rec.round % 9
        assert rec.bytes_up == 1000 * rec.selected
    assert set(events["round"]) <= set(numbers)
    assert ck is not None
    ck_round, blob = ck
    # every commit writes a checkpoint, so it belongs to the last stored round, whole
    assert ck_round == numbers[-1]
    assert blob == f"{ck_round}:".encode() + bytes(100_000)
    return len(numbers)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_kill_9_never_leaves_a_partial_round(tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    rng = random.Random(1234)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    stored = 0
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(study_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # the child's imports take well under a second
            assert line.startswith("ready"), child.stderr.read() if child.stderr else line
            assert int(line.split()[1]) == stored, "the child resumes after the last whole round"
            time.sleep(rng.uniform(0.05, 0.35))
            assert child.poll() is None, "the writer stopped before it was killed"
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        now = check_whole_rounds(study_dir)
        assert now >= stored
        stored = now
    assert stored > 0, "no round was ever committed: the test did not exercise the store"
