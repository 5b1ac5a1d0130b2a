"""Minor page faults and system time of a run's rounds with glibc's defaults and with
:func:`fedwave.engine.allocator.keep_freed_memory` (the ``vs_flower`` task: 2NN on the digits, 100 UEs
all selected, E = 1, B = 10, batched executor).

    OMP_NUM_THREADS=1 python benchmarks/allocator_faults.py [--rounds 20] [--repeats 2]

Each measurement runs in a fresh process (``FEDWAVE_KEEP_FREED_MEMORY=0`` or ``1``) that builds the run
in-process and reads ``resource.getrusage`` before and after ``Simulation.run_rounds``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import resource, sys
from fedwave.engine.allocator import keep_freed_memory
from fedwave.config import load_config
from fedwave.fl.run import build_simulation

applied = keep_freed_memory()
overrides = [
    "data.dataset=digits", "model.name=2nn", "fl.num_ues=100", "fl.fraction=1.0", "fl.local_epochs=1",
    "fl.batch_size=10", "fl.lr=0.05", "engine.executor=batched", "seed=0",
]
sim = build_simulation(load_config(None, overrides), keep_records=False)
before = resource.getrusage(resource.RUSAGE_SELF)
sim.run_rounds(int(sys.argv[1]))
after = resource.getrusage(resource.RUSAGE_SELF)
print(applied, after.ru_minflt - before.ru_minflt, after.ru_stime - before.ru_stime)
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    print(f"{'malloc':<22}{'minor faults':>14}{'system s':>10}")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for _ in range(args.repeats):
        for keep, label in (("0", "glibc's defaults"), ("1", "keep_freed_memory")):
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.rounds)],
                env={**env, "FEDWAVE_KEEP_FREED_MEMORY": keep},
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            applied, faults, system_s = proc.stdout.split()
            if keep == "1" and applied != "True":
                print("keep_freed_memory() did not apply (not glibc?): nothing to compare", file=sys.stderr)
                return 1
            print(f"{label:<22}{int(faults):>14,}{float(system_s):>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
