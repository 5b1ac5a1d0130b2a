"""Clock-only benchmark: ``fedwave bench clock --ues 10000 --rounds 5`` (or ``python -m fedwave.sim.bench``).

Runs the simulated clock with a trivial driver (fixed payload, no training) and prints the rounds timed
by the vectorised path, the SimPy events processed (``--simpy`` times every round with SimPy), the host's
wall seconds, UE-rounds per second and peak memory. The objects alive before the simulation (the
imports) are moved out of the garbage collector's way first (``gc.freeze``). This is the one module under
``sim/`` that reads the host clock, and only to time the simulation, never to drive it.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import tracemalloc
from collections.abc import Sequence

from fedwave.records import RoundRecord, UEEvent
from fedwave.sim.clock import Clock
from fedwave.sim.config import WirelessConfig
from fedwave.sim.protocol import Arrival, LocalResult


class FixedDriver:
    """Selects the first ``count`` available UEs; every update is ``payload_bytes`` bytes."""

    def __init__(self, payload_bytes: int, samples: int) -> None:
        self.payload_bytes = payload_bytes
        self.samples = samples
        self.rounds: list[RoundRecord] = []

    def select(self, round: int, available: Sequence[int], count: int) -> list[int]:
        return list(available[:count])

    def broadcast_bytes(self) -> int:
        return self.payload_bytes

    def local_updates(self, round: int, ues: Sequence[int], version: int) -> list[LocalResult]:
        return [LocalResult(payload_bytes=self.payload_bytes, samples_processed=self.samples)] * len(ues)

    def discard(self, handles: list[object], reason: str) -> None:
        return None

    def aggregate(self, round: int, arrivals: list[Arrival]) -> None:
        return None

    def end_round(self, record: RoundRecord, events: Sequence[UEEvent]) -> bool:
        self.rounds.append(record)
        return True


def _simulate(args: argparse.Namespace) -> tuple[Clock, FixedDriver, float]:
    fading: dict[str, object] = {"process": args.fading_process, "block": args.fading_block}
    if args.block_s is not None:
        fading["coherence_time_s"] = args.block_s
    cfg = WirelessConfig.model_validate(
        {
            "access": {"scheme": args.access},
            "policy": {"name": args.policy, "buffer_k": args.buffer_k},
            "cell": {"fading": fading, "mobility": args.mobility},
            "clock": "simpy" if args.simpy else "auto",
        }
    )
    clock = Clock(cfg, args.ues, args.flops_per_sample, args.seed)
    driver = FixedDriver(args.payload_bytes, args.samples)
    t_end = clock.run(driver, args.rounds, args.clients or args.ues)
    return clock, driver, t_end


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the simulation (timed, then again under tracemalloc), print the figures."""
    p = argparse.ArgumentParser(prog="fedwave bench clock", description=__doc__.splitlines()[0])
    p.add_argument("--ues", type=int, default=10000, help="UEs in the cell")
    p.add_argument("--rounds", type=int, default=5, help="rounds to simulate")
    p.add_argument("--clients", type=int, default=0, help="UEs per round (default: all)")
    p.add_argument("--access", choices=("fdma", "tdma"), default="fdma")
    p.add_argument("--policy", default="sync")
    p.add_argument("--buffer-k", type=int, default=10)
    p.add_argument("--payload-bytes", type=int, default=212_000)
    p.add_argument("--samples", type=int, default=72)
    p.add_argument("--flops-per-sample", type=float, default=7.35e6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fading-block",
        choices=("coherence", "round"),
        default="coherence",
        help="cell.fading.block: per coherence block (default) or one draw per attempt",
    )
    p.add_argument("--fading-process", choices=("iid", "gauss_markov"), default="iid")
    p.add_argument("--block-s", type=float, default=None, help="fading block length in s (default: T_c)")
    p.add_argument("--mobility", choices=("static", "random_waypoint"), default="static")
    p.add_argument("--simpy", action="store_true", help="time every round with SimPy (wireless.clock: simpy)")
    p.add_argument("--no-tracemalloc", action="store_true", help="skip the second, memory-traced run")
    args = p.parse_args(argv)

    gc.freeze()  # the imports' objects (torch, numpy) are never garbage: keep the collector off them
    t0 = time.perf_counter()
    clock, driver, t_end = _simulate(args)
    wall = time.perf_counter() - t0
    n = clock.events_processed
    rounds = len(driver.rounds)
    ue_rounds = sum(r.selected for r in driver.rounds)
    print(
        f"ues={args.ues} rounds={rounds} clients/round={args.clients or args.ues} "
        f"access={args.access} policy={args.policy} fading={args.fading_process}/{args.fading_block} "
        f"mobility={args.mobility}"
    )
    print(f"simulated time      {t_end:.6g} s")
    print(f"vectorised rounds   {clock.vector_rounds} of {rounds}")
    print(f"events processed    {n} (SimPy rounds only)")
    print(f"wall seconds        {wall:.3f}")
    print(f"wall s per round    {wall / max(1, rounds):.4f}")
    print(f"events per second   {n / wall:.4g}")
    print(f"UE-rounds per s     {ue_rounds / wall:.4g}")
    if not args.no_tracemalloc:
        tracemalloc.start()
        _simulate(args)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak traced memory  {peak / 2**20:.1f} MiB (Python allocations of one simulation)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS            {rss / 1024:.1f} MiB (whole process, incl. numpy/torch imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
