"""CPU time of the coherence-block uploads of one vectorised round, and of the logarithms behind them.

    python benchmarks/clock_blocks.py [--links 10000] [--bits 4e5] [--repeats 5]
        [--elements 131072,524288,1048576]

``--links`` uplinks of 2 kHz each (a 20 MHz band split 10,000 ways), mean SNRs from 0 to 20 dB, coherence
blocks of 76 ms, one attempt of ``--bits`` bits each (4e5 bits: about 865 blocks a link). For each
``max_elements`` of :func:`fedwave.channel.blocks.uplink_block_airtimes` it prints the least CPU time over the
repeats (the settings interleaved, so that a change of the host's speed hits all of them) and the nanoseconds
per block the messages span; then NumPy's ``log`` of float64 and of float32 values, per value. CPU time rather
than wall time: this 2-core virtual machine's speed drifts by up to half within minutes, and CPU time leaves
out the time it is not scheduled.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fedwave.channel.blocks import uplink_block_airtimes
from fedwave.counter_rng import column_keys
from fedwave.engine.allocator import keep_freed_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--links", type=int, default=10_000)
    p.add_argument("--bits", type=float, default=4e5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--elements", default="131072,524288,1048576")
    args = p.parse_args()
    keep_freed_memory()  # as the fedwave command does
    n = args.links
    rng = np.random.default_rng(0)
    keys = column_keys(0, ("fading", "up"), 0, np.arange(n))
    snr = 10 ** rng.uniform(0.0, 2.0, n)
    band = np.full(n, 2e3)
    bits = np.full(n, args.bits)
    attempts = np.ones(n, dtype=np.int64)
    block_s = 0.0761
    sizes = [int(e) for e in args.elements.split(",")]
    best: dict[int, float] = {}
    blocks = 0.0
    for _ in range(args.repeats):
        for size in sizes:
            t = time.process_time()
            out = uplink_block_airtimes(
                keys,
                snr,
                band,
                bits,
                attempts,
                gap_db=0.0,
                block_s=block_s,
                fading="rayleigh",
                rician_k=0.0,
                max_elements=size,
            )
            best[size] = min(best.get(size, np.inf), time.process_time() - t)
            blocks = float(np.sum(out[:, 0]) / block_s)  # blocks the messages span
    print(f"{n} links, {args.bits:g} bits each: {blocks:.4g} blocks spanned (more are drawn: chunks)")
    for size in sizes:
        print(f"max_elements {size:>7}: {best[size]:.4f} s CPU, {best[size] / blocks * 1e9:.1f} ns a block")
    u = rng.random(1 << 16)
    for name, arg in (("float64 log", 1.0 - u), ("float32 log", (1.0 - u).astype(np.float32))):
        out_buf = np.empty_like(arg)
        t_best = np.inf
        for _ in range(max(3, args.repeats)):
            t = time.process_time()
            for _ in range(50):
                np.log(arg, out=out_buf)
            t_best = min(t_best, time.process_time() - t)
        print(f"numpy {name}: {t_best / (50 * u.size) * 1e9:.2f} ns a value")


if __name__ == "__main__":
    main()
