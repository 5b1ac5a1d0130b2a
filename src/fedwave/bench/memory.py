"""Peak memory of a large run: 10,000 UEs, 100 per round, ``ef(topk:0.01)``, ``2nn`` on MNIST, 50 rounds.

    fedwave bench memory [--states-in-memory N] [--rounds 50] [-o key=value ...]

Runs the issue-12 memory task in this process (no run directory) and prints the wall time and the peak
resident set size of the process (``ru_maxrss``, torch and the dataset included). ``--states-in-memory``
sets ``engine.codec_states_in_memory`` (error-feedback residuals beyond N UEs spilled to disk; the
results are the same bit for bit).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence

from fedwave.config import load_config
from fedwave.fl.run import run

TASK = [
    "data.dataset=mnist",
    "model.name=2nn",
    "fl.num_ues=10000",
    "fl.fraction=0.01",
    "codec=ef(topk:0.01)",
]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fedwave bench memory", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--states-in-memory", type=int, default=None, help="engine.codec_states_in_memory")
    p.add_argument("-o", "--override", action="append", default=[], help="extra config override")
    args = p.parse_args(argv)
    extra = [f"fl.rounds={args.rounds}", *args.override]
    if args.states_in_memory is not None:
        extra.append(f"engine.codec_states_in_memory={args.states_in_memory}")
    t0 = time.perf_counter()
    result = run(load_config(None, [*TASK, *extra]), keep_events=False, keep_records=False)
    wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    print(f"rounds {result.summary['rounds']}, final accuracy {result.summary['final_accuracy']:.4f}")
    print(f"wall seconds        {wall:.1f}")
    print(f"peak RSS            {peak_mib:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
