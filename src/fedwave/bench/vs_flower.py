"""fedwave against Flower 1.41's simulation on one task, both timed from process start.

    fedwave bench vs_flower [--repeats 3] [--rounds 20] [--ues 100] [--executor batched] [--cpus 2]

The task (issue 12): McMahan et al.'s 2NN on the digits, 100 UEs all selected every round, E = 1,
B = 10, lr 0.05, 20 rounds, the global model evaluated after every round. fedwave runs it as ``fedwave
run`` (the default cell and clock, fp32 codec, ``engine.executor`` as given) in a fresh process; Flower
runs :mod:`fedwave.bench.flower_task` by path (a plain Flower app that never imports fedwave) in its
simulation engine (Ray, ``--cpus`` CPUs). Each repeat runs both, alternating which goes first; the wall
time of each is measured from just before its process is started to just after it exits (imports, data,
Ray start-up and shutdown included). Prints every time, the medians and their ratio. Needs the extra
``pip install 'fedwave[flower]'``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def fedwave_command(args: argparse.Namespace, out_dir: Path) -> list[str]:
    """``fedwave run`` of the task, writing its run directory under ``out_dir``."""
    overrides = [
        "data.dataset=digits",
        "model.name=2nn",
        f"fl.num_ues={args.ues}",
        "fl.fraction=1.0",
        "fl.local_epochs=1",
        "fl.batch_size=10",
        "fl.lr=0.05",
        f"fl.rounds={args.rounds}",
        f"engine.executor={args.executor}",
        f"seed={args.seed}",
    ]
    cmd = [sys.executable, "-m", "fedwave.cli", "run", "--out", str(out_dir)]
    for o in overrides:
        cmd += ["-o", o]
    return cmd


def flower_command(args: argparse.Namespace) -> list[str]:
    """The plain Flower app of the task (run by path, so fedwave is not imported)."""
    script = Path(__file__).with_name("flower_task.py")
    return [
        sys.executable, str(script), "--ues", str(args.ues), "--rounds", str(args.rounds),
        "--seed", str(args.seed), "--cpus", str(args.cpus),
    ]  # fmt: skip


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds from process start to exit, the last line of its standard output).

    Raises:
        RuntimeError: the process failed (its exit status and the end of its output).
    """
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with {proc.returncode}:\n" + "\n".join(tail))
    lines = proc.stdout.strip().splitlines()
    return wall, lines[-1] if lines else ""


def final_accuracy(run_dir: Path) -> str:
    """The last round's test accuracy in a fedwave run directory, as the Flower task prints it."""
    with (run_dir / "rounds.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return f"fedwave final accuracy {float(rows[-1]['accuracy']):.4f} after {len(rows)} rounds"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fedwave bench vs_flower", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=_positive, default=3, help="runs of each (medians are compared)")
    p.add_argument("--rounds", type=_positive, default=20)
    p.add_argument("--ues", type=_positive, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--executor", default="batched", help="fedwave's engine.executor")
    p.add_argument("--cpus", type=_positive, default=2, help="CPUs of Flower's simulation engine")
    args = p.parse_args(argv)
    if importlib.util.find_spec("flwr") is None:
        print("fedwave bench vs_flower needs Flower: pip install 'fedwave[flower]'", file=sys.stderr)
        return 2
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    times: dict[str, list[float]] = {"fedwave": [], "flower": []}
    with tempfile.TemporaryDirectory(prefix="fedwave-vs-flower-") as tmp:
        for rep in range(args.repeats):
            order = ["fedwave", "flower"] if rep % 2 == 0 else ["flower", "fedwave"]
            for who in order:
                run_dir = Path(tmp) / f"run{rep}"
                cmd = fedwave_command(args, run_dir) if who == "fedwave" else flower_command(args)
                try:
                    wall, last = timed(cmd, env)
                except RuntimeError as exc:  # the child said what was wrong; no traceback on top of it
                    print(f"fedwave bench vs_flower: {exc}", file=sys.stderr)
                    return 1
                if who == "fedwave":
                    last = final_accuracy(run_dir)
                times[who].append(wall)
                print(f"repeat {rep + 1}  {who:<8} {wall:8.2f} s   {last}", flush=True)
    fw, fl = statistics.median(times["fedwave"]), statistics.median(times["flower"])
    print(f"median   fedwave  {fw:8.2f} s  (engine.executor={args.executor})")
    print(f"median   flower   {fl:8.2f} s")
    print(f"fedwave / flower  {fw / fl:8.3f}  (1/{fl / fw:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
