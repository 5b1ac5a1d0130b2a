"""Keep freed memory in the process: glibc's ``malloc`` tuned for the allocation pattern of a round.

A round allocates and frees tens of MB in pieces of 0.1 to 10 MB again and again (stacked parameters,
update differences, activations, payload bytes). glibc's ``malloc`` serves a piece above its mmap
threshold (128 kB at start, raised as such pieces are freed) with a fresh ``mmap`` that ``free`` unmaps,
and hands free memory at the top of its heap back to the kernel once that exceeds its trim threshold;
the next piece of the size then page-faults on each of its 4 kB pages, which the kernel zeroes.
:func:`keep_freed_memory` serves pieces up to 32 MiB from the heap (``M_MMAP_THRESHOLD``) and keeps up
to 128 MiB of freed heap (``M_TRIM_THRESHOLD``). Memory freed stays in the process for its next
allocations: the resident size stays near its peak instead of shrinking between rounds. The numbers a
run computes do not change (PyTorch aligns every tensor to 64 bytes either way).

Measured on the 2-core machine by ``OMP_NUM_THREADS=1 python benchmarks/allocator_faults.py`` (the
``vs_flower`` task's 20 rounds, 2NN, 100 UEs, batched executor; ``resource.getrusage`` around
``Simulation.run_rounds``; two runs of each): 79,494 and 96,118 minor page faults and 0.26 and 0.32 s of
system time with glibc's defaults; 13,530 and 13,365 faults and 0.03 and 0.04 s with the tuning.
``tests/engine/test_engine_allocator.py`` counts the faults of three such rounds.

Who calls it: the ``fedwave`` command (:func:`fedwave.cli.entry`, before the command) and the study
workers, local (:mod:`fedwave.fl.parallel`: spawned processes start with glibc's defaults) and Ray
(:mod:`fedwave.fl.rayrun`: the Ray worker process that computes a run, which keeps the tuning for any
later task it runs). Otherwise a program that uses fedwave as a library is left alone; it may call
:func:`keep_freed_memory` itself.
``FEDWAVE_KEEP_FREED_MEMORY=0`` in the environment turns it off.
"""

from __future__ import annotations

import ctypes
import os

#: ``mallopt`` parameters (glibc's ``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Pieces up to this size (bytes) come from the heap, not from a fresh ``mmap`` each (32 MiB: glibc's
#: own ceiling for its adaptive threshold on 64-bit systems; 32-bit builds refuse it).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory (bytes) the heap keeps at its top rather than handing back to the kernel.
TRIM_THRESHOLD = 128 * 2**20

_answer: dict[str, bool] = {}  # the first call's answer, under the key "applied"


def _glibc() -> bool:
    """Whether this process runs on glibc (``confstr`` names its version there only)."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):  # no confstr, or the name is unknown: not glibc
        return False


def keep_freed_memory() -> bool:
    """Tune glibc's ``malloc`` as the module docstring says, once per process: a later call returns
    the first call's answer and changes nothing, whatever the environment says by then.

    Returns:
        True when the settings took effect; False where there is no glibc (another C library,
        another OS), where ``mallopt`` refused them, or where ``FEDWAVE_KEEP_FREED_MEMORY=0``.
    """
    if "applied" in _answer:
        return _answer["applied"]
    ok = False
    if os.environ.get("FEDWAVE_KEEP_FREED_MEMORY", "1") != "0" and _glibc():
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library: glibc, as checked
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    _answer["applied"] = ok
    return ok
