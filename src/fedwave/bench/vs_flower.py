"""fedwave against Flower 1.41's simulation on one task, both timed from process start.

    fedwave bench vs_flower [--repeats 3] [--rounds 20] [--ues 100] [--executor batched] [--cpus 2]
                            [--threads N]

The task (issue 12): McMahan et al.'s 2NN on the digits, 100 UEs all selected every round, E = 1,
B = 10, lr 0.05, 20 rounds, the global model evaluated after every round. fedwave runs it as ``fedwave
run`` (the default cell and clock, fp32 codec, ``engine.executor`` as given, ``engine.threads`` torch
threads: ``--threads``, by default as many as Flower's CPUs) in a fresh process; Flower runs
:mod:`fedwave.bench.flower_task` by path (a plain Flower app that never imports fedwave) in its
simulation engine (Ray, ``--cpus`` CPUs: as many clients train at once, one CPU each). Each repeat runs
both, alternating which goes first; the wall time of each is measured from just before its process is
started to just after it exits (imports, data, Ray start-up and shutdown included; the span ends when
the process has exited and its output pipes have closed, so Ray's workers, which hold them, are in
Flower's time). The next process starts only once every process of the previous one's session has
ended (a safeguard, untimed and printed when it waits). Prints every time, the medians and their ratio.
Needs the extra ``pip install 'fedwave[flower]'``.

Before timing, fedwave's own modules are byte-compiled where Python caches them (``compileall``), as
pip does for every package it installs (Flower's included). An editable install under
``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile fedwave's ~150 modules from source in every
timed process (about 0.3 s here), a cost no installed package pays.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import os
import signal
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
        f"engine.threads={args.threads or args.cpus}",
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


def compile_fedwave() -> bool:
    """Byte-compile fedwave's modules into their ``__pycache__`` (False when that cannot be written)."""
    import compileall

    import fedwave

    package = Path(fedwave.__file__).parent
    try:
        return bool(compileall.compile_dir(package, quiet=1))
    except OSError:
        return False


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str, float]:
    """(wall seconds from process start to exit, the last line of its standard output, seconds its
    leftover processes took to end).

    The span ends when the process has exited and its standard output and error have closed (a child
    that holds them, such as a Ray worker, is timed until it exits too). The process runs in a session
    of its own; any of its processes still alive after that (one that let go of the pipes) is waited
    for, untimed, at most 60 s, then killed, so that it shares the CPUs with no later timed run. A
    process that starts a session of its own escapes this wait. An interrupt (Ctrl-C) kills the session.

    Raises:
        RuntimeError: the process failed (its exit status and the end of its output).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate()
    except BaseException:  # Ctrl-C reaches only this process (the child has its own session): end it
        _kill_session(proc.pid)
        proc.wait()
        raise
    wall = time.perf_counter() - t0
    lingered = _wait_for_session(proc.pid, timeout=60.0)
    if proc.returncode != 0:
        tail = (out + err).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with {proc.returncode}:\n" + "\n".join(tail))
    lines = out.strip().splitlines()
    return wall, lines[-1] if lines else "", lingered


def _session_members(sid: int) -> list[int]:
    """Pids of the live processes of session ``sid`` (none where there is no /proc to read)."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:  # bytes: a process name may be any bytes
                fields = f.read().rsplit(b")", 1)[1].split()
            if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == sid:
                members.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return members


def _kill_session(sid: int) -> None:
    """SIGKILL every live process of session ``sid`` and wait (at most 5 s) until none is left."""
    for pid in _session_members(sid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.perf_counter() + 5.0
    while _session_members(sid) and time.perf_counter() < deadline:
        time.sleep(0.05)


def _wait_for_session(sid: int, timeout: float) -> float:
    """Seconds until session ``sid`` had no live process left (its stragglers killed after ``timeout``)."""
    t0 = time.perf_counter()
    while _session_members(sid):
        if time.perf_counter() - t0 > timeout:
            _kill_session(sid)
            break
        time.sleep(0.1)
    return time.perf_counter() - t0


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
    p.add_argument(
        "--threads", type=_positive, default=None, help="fedwave's engine.threads (default: --cpus)"
    )
    args = p.parse_args(argv)
    if importlib.util.find_spec("flwr") is None:
        print("fedwave bench vs_flower needs Flower: pip install 'fedwave[flower]'", file=sys.stderr)
        return 2
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    if compile_fedwave():
        print("fedwave's modules byte-compiled beforehand (as pip compiles an installed package's)")
    else:
        print("note: fedwave's modules could not be byte-compiled; its imports compile them each time")
    times: dict[str, list[float]] = {"fedwave": [], "flower": []}
    with tempfile.TemporaryDirectory(prefix="fedwave-vs-flower-") as tmp:
        for rep in range(args.repeats):
            order = ["fedwave", "flower"] if rep % 2 == 0 else ["flower", "fedwave"]
            for who in order:
                run_dir = Path(tmp) / f"run{rep}"
                cmd = fedwave_command(args, run_dir) if who == "fedwave" else flower_command(args)
                try:
                    wall, last, lingered = timed(cmd, env)
                except RuntimeError as exc:  # the child said what was wrong; no traceback on top of it
                    print(f"fedwave bench vs_flower: {exc}", file=sys.stderr)
                    return 1
                if who == "fedwave":
                    last = final_accuracy(run_dir)
                times[who].append(wall)
                after = ""
                if lingered >= 0.2:
                    after = f"   (its other processes ended {lingered:.1f} s later, untimed)"
                print(f"repeat {rep + 1}  {who:<8} {wall:8.2f} s   {last}{after}", flush=True)
    fw, fl = statistics.median(times["fedwave"]), statistics.median(times["flower"])
    how = f"engine.executor={args.executor}, engine.threads={args.threads or args.cpus}"
    print(f"median   fedwave  {fw:8.2f} s  ({how})")
    print(f"median   flower   {fl:8.2f} s")
    print(f"fedwave / flower  {fw / fl:8.3f}  (1/{fl / fw:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
