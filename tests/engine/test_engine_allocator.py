"""glibc's malloc tuned to keep freed memory (fedwave.engine.allocator), in fresh processes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt tuning applies to glibc only",
)

# Three rounds of the vs_flower task's training (2NN, 100 UEs all selected, batched executor: per round
# about 22 MB of stacked parameters, their differences and the payload bytes are made and freed), after
# one round of warm-up. Prints whether the tuning took effect, then the minor page faults of the rounds.
ROUNDS = textwrap.dedent(
    """
    import resource
    from fedwave.engine.allocator import keep_freed_memory

    applied = keep_freed_memory()
    from fedwave.config import load_config
    from fedwave.fl.run import build_simulation

    overrides = ["model.name=2nn", "fl.num_ues=100", "fl.fraction=1.0", "engine.executor=batched"]
    sim = build_simulation(load_config(None, overrides), keep_records=False)
    sim.run_rounds(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    sim.run_rounds(3)
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)
#: The pages of one round's stacked parameters (100 UEs x 55,210 float32 parameters).
PAGES_PER_ROUND = 100 * 55_210 * 4 // 4096


def _python(code: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return proc.stdout.strip()


def test_freed_memory_is_reused_without_page_faults() -> None:
    applied, faults = _python(ROUNDS).split()
    off, faults_off = _python(ROUNDS, FEDWAVE_KEEP_FREED_MEMORY="0").split()
    assert (applied, off) == ("True", "False")
    # glibc's defaults hand freed blocks back to the kernel: their pages fault again every round
    # (measured: 26,468 to 27,360 faults, with 1 or 2 threads)
    assert int(faults_off) >= 3 * PAGES_PER_ROUND
    # tuned, the blocks are reused: fewer faults in three rounds than one round's parameters have pages
    # (measured: 344 to 511)
    assert int(faults) < PAGES_PER_ROUND
    assert int(faults) * 20 < int(faults_off)


def test_the_command_and_the_study_workers_tune_the_allocator() -> None:
    code = textwrap.dedent(
        """
        import os, queue, sys
        import fedwave.cli as cli
        import fedwave.engine.allocator as allocator
        from fedwave.fl.parallel import _worker

        jobs = queue.Queue()
        jobs.put(None)
        _worker(jobs, queue.Queue(), os.getppid())
        print("worker", allocator._applied)
        cli.keep_freed_memory = lambda: print("command tunes") or True
        sys.argv = ["fedwave", "codecs"]
        cli.entry()
        """
    )
    out = _python(code).splitlines()
    assert out[:2] == ["worker [True]", "command tunes"]
    assert any(line.startswith("fp32") for line in out[2:])  # then the command ran


def test_the_tuning_is_applied_once_and_can_be_turned_off() -> None:
    code = textwrap.dedent(
        """
        from fedwave.engine.allocator import keep_freed_memory
        print(keep_freed_memory(), keep_freed_memory())
        """
    )
    assert _python(code) == "True True"
    assert _python(code, FEDWAVE_KEEP_FREED_MEMORY="0") == "False False"
