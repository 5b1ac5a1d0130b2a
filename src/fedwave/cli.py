"""The ``fedwave`` command line: one small function per command.

Errors caused by input (configs, data, payloads) print one clear message and exit with status 2;
they never show a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from fedwave.engine.allocator import keep_freed_memory
from fedwave.errors import FedwaveError
from fedwave.startup import imports, pause_during_imports

Command = Callable[[argparse.Namespace], int]


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config file (default: the built-in default scenario)")
    p.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. -o fl.rounds=5 -o codec=uniform:8 (repeatable)",
    )


def _load(args: argparse.Namespace) -> Any:
    from fedwave.config import load_config

    return load_config(args.config, args.override)


# ------------------------------------------------------------------------------------------ run
def cmd_run(args: argparse.Namespace) -> int:
    """Run one simulation and print its summary."""
    with imports():
        from fedwave.cli_views import print_run_summary, round_progress
        from fedwave.config import Config, commented_yaml
        from fedwave.fl.run import default_run_dir, run

    if args.print_config:
        print("# fedwave configuration: every key with its default (change any with -o key=value)")
        print(commented_yaml(_load(args) if (args.config or args.override) else Config()))
        return 0
    cfg = _load(args)
    run_dir = Path(args.out) if args.out else default_run_dir(cfg)
    with round_progress(cfg.fl.rounds, quiet=args.quiet) as on_round:
        # the runner under fedwave.run, without its DataFrames: a plain run imports no pandas
        # events and records stream to timeline.csv and rounds.csv: none are kept, so memory does not
        # grow with UEs x rounds
        result = run(cfg, run_dir=run_dir, on_round=on_round, keep_events=False, keep_records=False)
    print_run_summary(result)
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    """Run a gradient-leakage attack on fresh UE batches and print the leakage summary."""
    with imports():
        from fedwave.api import attack
        from fedwave.fl.run import default_run_dir
        from fedwave.privacy.attacks.views import attack_progress, print_attack_summary

    cfg = _load(args)
    run_dir = Path(args.out) if args.out else default_run_dir(cfg)
    with attack_progress(cfg, quiet=args.quiet) as hook:
        result = attack(cfg, out=run_dir, progress=hook)  # the library's fedwave.attack
    print_attack_summary(result.raw)
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    """Print the per-UE label histogram of the configured partition."""
    from fedwave.data.federated import dataset_for, partition_for
    from fedwave.data.partition import format_histogram, label_histogram

    cfg = _load(args)
    ds = dataset_for(cfg)
    labels = ds.y_train.numpy()
    parts = partition_for(cfg, labels)
    print(
        f"{cfg.data.dataset}: {len(labels)} training samples, {ds.num_classes} classes, "
        f"partition '{cfg.data.partition}' over {cfg.fl.num_ues} UEs (seed {cfg.seed})"
    )
    print(format_histogram(label_histogram(parts, labels, ds.num_classes), max_rows=args.max_rows))
    return 0


def cmd_codecs(args: argparse.Namespace) -> int:
    """List the codecs with their parameters."""
    from fedwave.codecs import format_codec_list

    print(format_codec_list())
    return 0


def cmd_aggregators(args: argparse.Namespace) -> int:
    """List the BS's aggregation rules with what each tolerates."""
    from fedwave.server.aggregators import format_aggregator_list

    print(format_aggregator_list())
    return 0


def cmd_cell(args: argparse.Namespace) -> int:
    """Describe the sampled cell: per UE distance, SNR, rate, upload and compute time."""
    from fedwave.cli_views import describe_cell_for

    print(describe_cell_for(_load(args)))
    return 0


def cmd_privacy(args: argparse.Namespace) -> int:
    """The accountant alone: epsilon after the planned rounds, the q used and the z (no training)."""
    from fedwave.privacy.dp.describe import describe_plan
    from fedwave.privacy.dp.plan import plan_privacy

    cfg = _load(args)
    plan = plan_privacy(cfg)
    print(describe_plan(plan, cfg, every_round=args.every_round))
    return 0


#: Benchmarks that parse their own options: name -> "module:function" of their ``main(argv)``.
_BENCH_MAINS = {
    "attacks": "fedwave.privacy.attacks.bench:main",
    "clock": "fedwave.sim.bench:main",
    "efficiency": "fedwave.bench.efficiency:main",
    "memory": "fedwave.bench.memory:main",
    "vs_flower": "fedwave.bench.vs_flower:main",
}


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmarks that print figures (not tests)."""
    if args.what == "privacy":
        from fedwave.privacy.dp import bench as dp_bench

        rows = dp_bench.run_benchmark(args.dp_rounds, args.accountants.split(","))
        print(dp_bench.format_benchmark(rows, args.dp_rounds))
        return 0
    if args.what == "codecs":
        from fedwave.codecs.bench import format_benchmark, run_benchmark

        specs = args.codecs.split(",") if args.codecs else None
        print(format_benchmark(run_benchmark(num_values=args.values, repeats=args.repeats, specs=specs)))
        return 0
    if args.what in _BENCH_MAINS:
        module, name = _BENCH_MAINS[args.what].split(":")
        bench_main: Callable[[list[str]], int] = getattr(importlib.import_module(module), name)
        return bench_main(args.rest)
    raise AssertionError(f"unknown benchmark {args.what!r}")  # argparse allows only the names above


# ------------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="fedwave", description="Federated learning over a simulated wireless cell."
    )
    parser.add_argument(
        "--portable",
        action="store_true",
        help="pin PyTorch, MKL, oneDNN and NumPy to their portable x86-64 kernels, so the same config and "
        "seed give bit-identical results on any x86-64 machine (slower; see README, Determinism)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run one simulation (the default scenario if no config is given)")
    _config_args(p)
    p.add_argument("--print-config", action="store_true", help="print the full config with comments and exit")
    p.add_argument("--out", help="run directory (default: output.dir/output.name or a timestamped name)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("attack", help="gradient-leakage attack on UE updates as the BS receives them")
    _config_args(p)
    p.add_argument("--out", help="run directory (default: output.dir/output.name or a timestamped name)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_attack)

    p = sub.add_parser("partition", help="print the per-UE label histogram of the partition")
    _config_args(p)
    p.add_argument("--max-rows", type=int, default=50, help="UE rows shown (default 50)")
    p.set_defaults(func=cmd_partition)

    p = sub.add_parser("codecs", help="list the update codecs and their parameters")
    p.set_defaults(func=cmd_codecs)

    p = sub.add_parser("aggregators", help="list the BS's aggregation rules (server.aggregator)")
    p.set_defaults(func=cmd_aggregators)

    p = sub.add_parser("cell", help="describe the sampled cell per UE (distance, SNR, rate, times)")
    _config_args(p)
    p.set_defaults(func=cmd_cell)

    p = sub.add_parser(
        "privacy", help="the DP accountant alone: epsilon per planned round, q and z (no training)"
    )
    _config_args(p)
    p.add_argument("--every-round", action="store_true", help="one row per round (default: compact table)")
    p.set_defaults(func=cmd_privacy)

    p = sub.add_parser(
        "bench",
        help="benchmarks that print figures: codecs (bytes, NMSE, MB/s), clock (events/s), privacy "
        "(accountant seconds), attacks (leakage fidelity), efficiency, memory and vs_flower (issue-12 tasks)",
    )
    bench = p.add_subparsers(dest="what", required=True, metavar="BENCHMARK")
    b = bench.add_parser("codecs", help="bytes, bits/coordinate, NMSE, encode/decode MB/s per codec")
    b.add_argument("--values", type=int, default=1_199_882, help="vector length (default: the CNN's size)")
    b.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    b.add_argument("--codecs", help="comma-separated spec strings (default: all)")
    b.set_defaults(func=cmd_bench)
    b = bench.add_parser("privacy", help="wall and CPU seconds of the DP accountants")
    b.add_argument("--dp-rounds", type=int, default=1000, help="planned rounds (default 1000)")
    b.add_argument("--accountants", default="rdp,pld,prv", help="comma-separated accountants")
    b.set_defaults(func=cmd_bench)
    for name, text in (
        ("clock", "events per second, wall time and memory of the simulated clock alone"),
        ("attacks", "gradient-leakage fidelity"),
        ("efficiency", "training FLOP/s of each executor over matmul FLOP/s (MNIST cnn, 100 UEs, E=5)"),
        ("memory", "peak RSS of 10,000 UEs, 100 per round, ef(topk:0.01), 2nn, 50 rounds"),
        ("vs_flower", "wall time of fedwave and of Flower 1.41 on the same task, from process start"),
    ):
        b = bench.add_parser(name, add_help=False, help=f"{text} (options: fedwave bench {name} --help)")
        b.set_defaults(rest=[], func=cmd_bench)

    from fedwave.cli_study import add_study_commands

    add_study_commands(sub, _config_args)
    return parser


#: Environment that pins every CPU kernel family to its portable (lowest common x86-64) code path:
#: PyTorch's own vectorised kernels, MKL (BLAS) and oneDNN (convolutions), and NumPy's dispatch.
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "FEDWAVE_PORTABLE": "1",
}


def _reexec_portable(argv: Sequence[str]) -> None:
    """Start this command again in a process whose CPU kernels are pinned (see :data:`PORTABLE_ENV`)."""
    rest = [a for a in argv if a != "--portable"]
    env = {**os.environ, **PORTABLE_ENV}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "fedwave.cli", *rest], env)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedwave`` command."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if getattr(args, "command", None) == "bench" and getattr(args, "what", None) in _BENCH_MAINS:
            args.rest = unknown  # the attack benchmark parses its own options
        else:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.portable and os.environ.get("FEDWAVE_PORTABLE") != "1":
        _reexec_portable(list(sys.argv[1:] if argv is None else argv))
    func: Command = args.func
    try:
        return func(args)
    except FedwaveError as exc:
        print(f"fedwave: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedwave: interrupted", file=sys.stderr)
        return 130


#: The exit status :func:`entry` hands to :func:`_exit_now` (empty: no quick exit).
_EXIT_STATUS: list[int] = []


def entry() -> NoReturn:
    """The ``fedwave`` command (console script and ``python -m fedwave.cli``): :func:`main`, then exit.

    When the command returns, Python first joins the threads and runs the ``atexit`` handlers the
    command registered, as always. Then, instead of the interpreter's own teardown (deleting every
    module and unloading torch's libraries, about 0.5 to 0.8 s of every command on the 2-core machine:
    ``python -c 'import torch'`` against the same ending in ``os._exit(0)``), the
    process flushes every open Python file and ends with ``os._exit`` and the command's status. Handlers
    registered before :func:`entry` (none are, by fedwave's imports) run after this one, so they are
    skipped. The ordinary way out is taken when an exception escapes :func:`main`, under ``coverage``,
    and while a writer that completes only when closed (gzip, bz2, lzma, zip, tar, a temporary file) is
    still open. Before the command, :func:`fedwave.engine.allocator.keep_freed_memory` sets how glibc
    reuses freed memory, and :func:`fedwave.startup.pause_during_imports` lets the commands that train
    import torch with the cyclic garbage collector paused (both for this process only: a library user's
    process is left alone).
    """
    atexit.register(_exit_now)  # registered before any handler of the command: it runs after them all
    keep_freed_memory()
    pause_during_imports()
    status = main()
    _EXIT_STATUS.append(status)
    raise SystemExit(status)


def _finished_on_close() -> tuple[type, ...]:
    """Writer types whose output is complete only once closed (a trailer, an index), of loaded modules."""
    names = {
        "gzip": "GzipFile",
        "bz2": "BZ2File",
        "lzma": "LZMAFile",
        "zipfile": "ZipFile",
        "tarfile": "TarFile",
        "tempfile": "_TemporaryFileWrapper",
    }
    found = (getattr(sys.modules.get(module), name, None) for module, name in names.items())
    return tuple(t for t in found if isinstance(t, type))


def _with_subclasses(roots: set[type]) -> set[type]:
    """``roots`` and every class derived from them, directly or not (``__subclasses__``)."""
    out: set[type] = set()
    stack = list(roots)
    while stack:
        kind = stack.pop()
        if kind not in out:
            out.add(kind)
            stack.extend(type.__subclasses__(kind))
    return out


def _exit_now() -> None:
    if not _EXIT_STATUS or "coverage" in sys.modules:
        return
    gc.unfreeze()  # the objects frozen after the command's imports (fedwave.startup) are looked at too
    # the file types and the writers complete only once closed, with every subclass (the class
    # hierarchy, not isinstance: no lazy proxy is woken); then one pass over the ~285,000 objects of a
    # run (a pass that also collected every object's type took 63 ms of a vs_flower run's 2.7 s)
    to_flush = _with_subclasses({io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom})
    to_close = _with_subclasses(set(_finished_on_close()))
    wanted = to_flush | to_close
    for obj in [o for o in gc.get_objects() if type(o) in wanted]:
        kind = type(obj)
        if kind in to_flush:  # a file some object still holds open loses no buffered byte
            with contextlib.suppress(OSError, ValueError):
                if not obj.closed and obj.writable():
                    obj.flush()
        elif kind in to_close and not getattr(obj, "closed", True):
            return  # a writer complete only once closed: the ordinary teardown closes it
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(_EXIT_STATUS[0])


if __name__ == "__main__":
    entry()
