"""The study commands: ``fedwave compare`` (a grid over seeds, resumable), ``fedwave report`` and
``fedwave study verify|restart|upgrade`` (check a study, recompute damaged runs, upgrade an old one)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedwave.cli_views import console
from fedwave.startup import imports


def cmd_compare(args: argparse.Namespace) -> int:
    """Run (or resume) a study and print its table; write the CSV and the HTML report."""
    with imports():
        from fedwave.config import config_data, describe_source
        from fedwave.fl.study import default_study_dir, parse_vary, plan_study, run_study
        from fedwave.records import RoundRecord

    if args.ray is not None:  # fail before planning when Ray is missing
        from fedwave.fl.rayrun import import_ray

        import_ray()
    if args.attack:  # --attack NAME: attack every finished run with that attack
        args.override = [*args.override, "attack.in_studies=true", f"attack.name={args.attack}"]
    base = config_data(args.config, args.override)  # the same loader as 'fedwave run'
    vary = parse_vary(args.vary, args.override)
    # every grid point is validated whole (never the base alone) and its data loaded before any run
    plan = plan_study(base, vary, args.seeds, describe_source(args.config, args.override))
    study_dir = Path(args.study) if args.study else default_study_dir(base, vary, args.seeds)
    _make_study_dir(study_dir)
    total = sum(r.config.fl.rounds for r in plan)
    console.print(
        f"study [bold]{study_dir}[/bold]: {len(plan) // args.seeds} method(s) x {args.seeds} seed(s) "
        f"= {len(plan)} runs, {total} rounds"
    )
    ticks: dict[str, int] = {}
    progress = Progress(
        TextColumn("[bold]study"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("", total=total)

        def on_round(run: Any, record: RoundRecord) -> None:
            ticks[run.run_id] = ticks.get(run.run_id, 0) + 1
            progress.update(task, advance=1, description=f"{run.method} seed {run.seed} round {record.round}")

        def on_run(run: Any, what: str, info: dict[str, Any]) -> None:
            progress.update(task, advance=run.config.fl.rounds - ticks.get(run.run_id, 0))
            ticks[run.run_id] = run.config.fl.rounds
            last = info.get("last")
            tail = ""
            if last is not None:
                tail = f": accuracy {last.accuracy:.4f}, simulated time {last.t_end:,.1f} s"
            if info.get("resumed_from") is not None:
                tail += f" (resumed at round {info['resumed_from']})"
            progress.console.print(f"  {run.method:<34} seed {run.seed}  {what}{tail}", soft_wrap=True)

        def on_attack(run: Any, what: str, record: Any) -> None:
            if record is None:
                progress.update(task, description=f"{run.method} seed {run.seed}: {what}")
                return
            line = f"  {run.method:<34} seed {run.seed}  {attack_line(record)}"
            progress.console.print(line, soft_wrap=True)

        run_study(
            study_dir,
            base,
            vary,
            args.seeds,
            on_round=on_round,
            on_run=on_run,
            on_attack=on_attack,
            workers=args.workers,
            ray=args.ray,
        )
    baseline = getattr(args, "baseline", None)
    return _summarize(study_dir, args.target, report=not args.no_report, baseline=baseline)


def attack_line(record: Any) -> str:
    """One line on a run's stored attack result (a :class:`~fedwave.report.attacks.LeakageRecord`)."""
    if record.status != "done":
        return f"attack {record.attack} not applicable: {record.error}"
    model = f"model after {record.model_rounds} rounds" if record.model_rounds else "untrained model"
    return (
        f"attack {record.attack}: PSNR median {record.psnr_median:.1f} dB, SSIM median "
        f"{record.ssim_median:.3f}, label accuracy {record.label_accuracy:.2f} "
        f"({record.samples} samples, {model}; attack {record.wall_s:.1f} s)"
    )


def _make_study_dir(study_dir: Path) -> None:
    from fedwave.errors import ConfigError

    if study_dir.exists() and not study_dir.is_dir():
        raise ConfigError(f"--study '{study_dir}' exists and is not a directory; choose another path")
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--study '{study_dir}' cannot be created: {exc.strerror or exc}") from None


def _accuracy(text: str) -> float:
    """argparse type of ``--target``: an accuracy in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be an accuracy in (0, 1], e.g. 0.9; got '{text}'")
    return value


def _positive(text: str) -> int:
    """argparse type of ``--seeds``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got '{text}'")
    return value


DEMO_CODECS = "fp32,uniform:8,qsgd:16,ef(sign),ef(topk:0.01)"


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo study: the default scenario, five codecs, two seeds, a table and an HTML report."""
    args.config = None
    args.vary = [f"codec={DEMO_CODECS}"]
    args.seeds = 2
    args.target = args.target if args.target is not None else 0.9
    args.no_report = False
    args.attack = None
    return cmd_compare(args)


def _summarize(study_dir: Path, target: float | None, *, report: bool, baseline: str | None = None) -> int:
    from fedwave.report.study import load_study
    from fedwave.report.tables import format_table, summary_table, write_csv

    study = load_study(study_dir)
    table = summary_table(study, target_accuracy=target, baseline=baseline)
    print(format_table(table))
    print(_air_vs_compute(study.ue_events))
    csv_path = write_csv(table, study_dir / "summary.csv")
    console.print(f"table: {csv_path}")
    if report:
        from fedwave.report.html import write_report

        console.print(f"report: {write_report(study_dir, target_accuracy=target, baseline=baseline)}")
    return 0


def _air_vs_compute(events: Any) -> str:
    """Per method: mean uplink airtime and compute time per UE and round, and their ratio."""
    if events.empty:
        return ""
    ev = events.assign(
        airtime=events["t_upload_end"] - events["t_upload_start"],
        compute=events["t_compute_end"] - events["t_compute_start"],
    )
    lines = ["uplink airtime vs compute time per UE and round (simulated, mean over UEs, rounds, seeds):"]
    width = max(28, *(len(str(m)) for m in ev["method"].unique()))  # one column, however long the names
    for method, g in ev.groupby("method", sort=True):
        air = float(g.loc[g["attempts"] > 0, "airtime"].mean())
        comp = float(g.loc[g["status"] != "skipped", "compute"].mean())
        ratio = air / comp if comp > 0 else float("inf")
        same = "yes" if 0.1 <= ratio <= 10 else "no"
        lines.append(f"  {method:<{width}} {air:8.3f} s / {comp:6.3f} s = {ratio:6.2f}  (within 10x: {same})")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    """Write the self-contained HTML report of a study directory."""
    from fedwave.report.html import write_report

    path = write_report(
        Path(args.study_dir),
        Path(args.out) if args.out else None,
        target_accuracy=args.target,
        baseline=args.baseline,
    )
    console.print(f"report: {path}")
    return 0


def _parallel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="compute runs in N local processes (this process alone writes the study; same results)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="compute runs as Ray tasks on the cluster at ADDRESS; without ADDRESS a local Ray with "
        "--workers CPUs is started (needs pip install 'fedwave[ray]')",
    )


def add_study_commands(sub: Any, config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``compare`` and ``report`` on the main parser's subcommands."""
    p = sub.add_parser("compare", help="compare methods over seeds (resumable); table, CSV and HTML report")
    config_args(p)
    p.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a config key and its values, e.g. --vary codec=fp32,uniform:8 (repeatable: the grid is "
        "every combination)",
    )
    p.add_argument("--seeds", type=_positive, default=1, help="seeds per combination (seed, seed+1, ...)")
    p.add_argument("--study", help="study directory (default: studies/study-<hash of the grid>)")
    p.add_argument(
        "--target", type=_accuracy, help="target accuracy for time-to-accuracy (default: 0.9 x best)"
    )
    p.add_argument(
        "--baseline",
        metavar="METHOD",
        help="the method speed-ups are measured against, e.g. 'codec=fp32' (default: the codec=fp32 one)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument(
        "--attack",
        metavar="NAME",
        help="after each run, run gradient-leakage attack NAME (analytic, idlg, dlg, ig) on what its BS "
        "receives and store the leakage (the attack.* keys set trials, batch, model round...); same as "
        "-o attack.in_studies=true -o attack.name=NAME",
    )
    _parallel_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "demo", help=f"the demo study: default scenario, codecs {DEMO_CODECS}, 2 seeds, table and report"
    )
    p.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value of the default scenario (repeatable)",
    )
    p.add_argument("--study", default="studies/demo", help="study directory (default: studies/demo)")
    p.add_argument("--target", type=_accuracy, help="target accuracy for time-to-accuracy (default: 0.9)")
    _parallel_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="write the self-contained HTML report of a study directory")
    p.add_argument("study_dir", help="a directory made by 'fedwave compare'")
    p.add_argument("--out", help="output HTML file (default: STUDY_DIR/report.html)")
    p.add_argument(
        "--baseline",
        metavar="METHOD",
        help="the method speed-ups are measured against, e.g. 'codec=fp32' (default: the codec=fp32 one)",
    )
    p.add_argument(
        "--target", type=_accuracy, help="target accuracy for time-to-accuracy (default: 0.9 x best)"
    )
    p.set_defaults(func=cmd_report)

    add_store_commands(sub)


# -- fedwave study verify | restart | upgrade ---------------------------------------------------------


def cmd_study_verify(args: argparse.Namespace) -> int:
    """Check a study: every round against its digest, every checkpoint against its SHA-256, the ledger."""
    from fedwave.report.errors import DamagedStudyError
    from fedwave.report.study import load_study

    study = load_study(args.study_dir, verify=False)
    found = study.damage()
    if found:
        raise DamagedStudyError(study.study_dir, found)
    n = study.table_counts()
    attacks = f", {n['attacks']} attack results" if n["attacks"] else ""
    print(
        f"study {study.study_dir}: sound. {n['runs']} runs, {n['rounds']} rounds with {n['ue_events']} UE "
        f"events{attacks} match their digests, {n['checkpoints']} checkpoints match their SHA-256, and no "
        f"committed round{' or attack result' if attacks else ''} is missing ({n['ledger']} runs in the "
        "ledger)."
    )
    return 0


def cmd_study_restart(args: argparse.Namespace) -> int:
    """Discard the named (or damaged) runs' stored rounds and compute them again from round 0."""
    from fedwave.errors import ConfigError
    from fedwave.fl.study import restart_runs
    from fedwave.records import RoundRecord

    study_dir = Path(args.study_dir)
    if not args.runs and not args.damaged:
        raise ConfigError("name the runs to restart (RUN_ID or METHOD/SEED), or pass --damaged")

    def on_round(run: Any, record: RoundRecord) -> None:
        if args.verbose:
            console.print(f"  {run.method} seed {run.seed} round {record.round}")

    def on_run(run: Any, what: str, info: dict[str, Any]) -> None:
        last = info.get("last")
        tail = f": accuracy {last.accuracy:.4f}, simulated time {last.t_end:,.1f} s" if last else ""
        console.print(
            f"  {run.run_id} {run.method:<34} seed {run.seed}  restarted, {what}{tail}", soft_wrap=True
        )

    def on_attack(run: Any, what: str, record: Any) -> None:
        if record is not None:
            console.print(f"  {run.run_id} {run.method:<34} seed {run.seed}  {attack_line(record)}")

    runs = restart_runs(
        study_dir, args.runs, damaged=args.damaged, on_round=on_round, on_run=on_run, on_attack=on_attack
    )
    if not runs:
        console.print(f"study {study_dir}: no damaged run; nothing restarted")
        return 0
    baseline = getattr(args, "baseline", None)
    return _summarize(study_dir, args.target, report=not args.no_report, baseline=baseline)


def cmd_study_upgrade(args: argparse.Namespace) -> int:
    """Bring a study database written by an older fedwave up to this schema version, then verify it."""
    from fedwave.report.errors import StoreError
    from fedwave.report.schema import DB_NAME, SCHEMA_VERSION
    from fedwave.report.store import ResultsStore

    study_dir = Path(args.study_dir)
    if not (study_dir / DB_NAME).is_file():
        raise StoreError(f"{study_dir} is not a study directory: it has no {DB_NAME}")
    with ResultsStore(study_dir) as store:
        old = store.upgraded_from
        store.check()
    if old is None:
        console.print(f"{study_dir / DB_NAME}: already schema version {SCHEMA_VERSION}; nothing to upgrade")
    else:
        console.print(
            f"{study_dir / DB_NAME}: upgraded from schema version {old} to {SCHEMA_VERSION}; round digests "
            "and checkpoint checksums now record the values as stored, and the ledger starts here"
        )
    return 0


def add_store_commands(sub: Any) -> None:
    """Register ``study verify``, ``study restart`` and ``study upgrade``."""
    p = sub.add_parser("study", help="check a study directory, restart some of its runs, or upgrade it")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = actions.add_parser(
        "verify", help="check every round's digest, every checkpoint's SHA-256 and the ledger of rounds"
    )
    v.add_argument("study_dir", help="a directory made by 'fedwave compare'")
    v.set_defaults(func=cmd_study_verify)
    r = actions.add_parser(
        "restart", help="discard some runs' stored rounds and compute them again from round 0"
    )
    r.add_argument("study_dir", help="a directory made by 'fedwave compare'")
    r.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="a run id (e.g. r1a2b3c4d5e6f) or METHOD/SEED (e.g. codec=fp32/1)",
    )
    r.add_argument(
        "--damaged", action="store_true", help="restart every run that 'study verify' finds damaged"
    )
    r.add_argument("--target", type=float, help="target accuracy for time-to-accuracy (default: 0.9 x best)")
    r.add_argument("--no-report", action="store_true", help="skip the HTML report")
    r.add_argument("-v", "--verbose", action="store_true", help="print each computed round")
    r.set_defaults(func=cmd_study_restart)
    u = actions.add_parser(
        "upgrade", help="upgrade a study database written by an older fedwave (adds digests), then verify"
    )
    u.add_argument("study_dir", help="a directory made by 'fedwave compare'")
    u.set_defaults(func=cmd_study_upgrade)
