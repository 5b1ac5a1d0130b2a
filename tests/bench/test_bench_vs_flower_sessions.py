"""vs_flower starts a timed process only once the previous one's whole session has ended, and kills
what outlives the wait: a straggler (Ray's workers after Flower) neither shares the CPUs with the next
timed run nor stays behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from fedwave.bench.vs_flower import _session_members, _wait_for_session, timed

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads sessions from /proc")

# the timed process exits at once; a child it started in the background lives on for a while
PARENT = (
    "import subprocess, sys; "
    "quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep({})'], **quiet); "
    "print('done')"
)


def test_the_wait_lasts_until_the_straggler_has_ended() -> None:
    t0 = time.perf_counter()
    wall, last, lingered = timed([sys.executable, "-c", PARENT.format(1.5)], dict(os.environ))
    assert last == "done"
    assert wall < 1.4  # the timed part ends with the process itself
    assert 0.3 < lingered < 10 and time.perf_counter() - t0 >= 1.5


def test_a_straggler_past_the_timeout_is_killed() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(600)], stdout=subprocess.PIPE, start_new_session=True, text=True
    )
    proc.communicate()
    time.sleep(0.3)
    assert _session_members(proc.pid), "the sleeping child should still be alive"
    lingered = _wait_for_session(proc.pid, timeout=0.5)
    assert 0.5 <= lingered < 5
    deadline = time.monotonic() + 5
    while _session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _session_members(proc.pid) == []


def test_an_interrupt_kills_the_timed_session(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []

    def interrupted(self: subprocess.Popen[str], *args: object, **kwargs: object) -> None:
        started.append(self.pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess.Popen, "communicate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        timed([sys.executable, "-c", PARENT.format(600)], dict(os.environ))
    assert started and _session_members(started[0]) == []


def test_a_process_name_that_is_not_utf8_is_read() -> None:
    code = (
        "import ctypes, sys, time; ctypes.CDLL(None).prctl(15, b'\\xff\\xfebad', 0, 0, 0); "
        "print('named', flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"named"
        assert _session_members(proc.pid) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
