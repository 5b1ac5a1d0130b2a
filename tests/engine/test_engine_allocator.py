"""glibc's malloc tuned to keep freed memory (fedwave.engine.allocator), in fresh processes."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt tuning applies to glibc only",
)

# Three rounds of the vs_flower task's training (2NN on the digits, 100 UEs all selected, E = 1, B = 10,
# lr 0.05, batched executor: per round about 22 MB of stacked parameters, their differences and the
# payload bytes are made and freed), after one round of warm-up. Prints whether the tuning took effect,
# the minor page faults of the three rounds, and a digest of the final global model.
ROUNDS = textwrap.dedent(
    """
    import hashlib, resource
    from fedwave.engine.allocator import keep_freed_memory

    applied = keep_freed_memory()
    from fedwave.config import load_config
    from fedwave.fl.run import build_simulation

    overrides = [
        "data.dataset=digits", "model.name=2nn", "fl.num_ues=100", "fl.fraction=1.0",
        "fl.local_epochs=1", "fl.batch_size=10", "fl.lr=0.05", "engine.executor=batched", "seed=0",
    ]
    sim = build_simulation(load_config(None, overrides), keep_records=False)
    sim.run_rounds(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    sim.run_rounds(3)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    digest = hashlib.sha256()
    for t in sim.driver.bs.model.state_dict().values():
        digest.update(t.detach().contiguous().numpy().tobytes())
    print(applied, faults, digest.hexdigest())
    """
)
#: The pages of one round's stacked parameters (100 UEs x 55,210 float32 parameters).
PAGES_PER_ROUND = 100 * 55_210 * 4 // resource.getpagesize()


def _python(code: str, **env: str) -> str:
    """Standard output of ``code`` in a fresh interpreter, with no malloc settings from this environment."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "FEDWAVE_KEEP_FREED_MEMORY")
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return proc.stdout.strip()


def _huge_pages_always() -> bool:
    """Whether transparent huge pages are on for every mapping (one fault then maps 2 MiB)."""
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(_huge_pages_always(), reason="with huge pages always on, faults do not count pages")
def test_freed_memory_is_reused_without_page_faults_and_the_numbers_stay() -> None:
    applied, faults, digest = _python(ROUNDS, FEDWAVE_KEEP_FREED_MEMORY="1").split()
    off, faults_off, digest_off = _python(ROUNDS, FEDWAVE_KEEP_FREED_MEMORY="0").split()
    assert (applied, off) == ("True", "False")
    assert digest == digest_off  # the allocator moves memory, never the numbers
    # tuned, the blocks are reused: fewer faults in three rounds than one round's parameters have pages
    # (measured: 344 to 511). glibc's defaults hand freed blocks back to the kernel, whose pages then
    # fault again (measured: 9,216 to 27,360 faults; how many depends on glibc's adaptive thresholds,
    # so only the order is asserted of them)
    assert int(faults) < PAGES_PER_ROUND
    assert int(faults) < int(faults_off)


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
        print("worker", allocator._answer)
        cli.keep_freed_memory = lambda: print("command tunes") or True
        sys.argv = ["fedwave", "codecs"]
        cli.entry()
        """
    )
    out = _python(code).splitlines()
    assert out[:2] == ["worker {'applied': True}", "command tunes"]
    assert any(line.startswith("fp32") for line in out[2:])  # then the command ran


def test_the_tuning_is_applied_once_and_can_be_turned_off() -> None:
    code = textwrap.dedent(
        """
        import os
        from fedwave.engine.allocator import keep_freed_memory
        first = keep_freed_memory()
        os.environ["FEDWAVE_KEEP_FREED_MEMORY"] = "1" if not first else "0"  # flip the switch
        print(first, keep_freed_memory())
        """
    )
    assert _python(code) == "True True"  # the second call kept the first answer and did nothing
    assert _python(code, FEDWAVE_KEEP_FREED_MEMORY="0") == "False False"
