"""What ``fedwave attack`` shows: a progress bar over attack iterations and the leakage summary table."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedwave.privacy.attacks.runner import AttackRun, TrialProgress

console = Console(soft_wrap=True)


@contextlib.contextmanager
def attack_progress(cfg: Any, *, quiet: bool = False) -> Iterator[TrialProgress | None]:
    """A progress bar over each trial's iterations; yields the ``progress(trial, done, total, loss)`` hook."""
    if quiet:
        yield None
        return
    progress = Progress(
        TextColumn(f"[bold]{cfg.attack.name}"),
        TextColumn("trial {task.fields[trial]}/" + str(cfg.attack.trials)),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("", total=None, trial=0)

        def hook(trial: int, done: int, total: int, loss: float) -> None:
            progress.update(
                task, completed=done, total=total, trial=trial + 1, description=f"gradient loss {loss:.3e}"
            )

        yield hook


def _fmt(x: float, digits: int = 2) -> str:
    return "inf" if math.isinf(x) else f"{x:.{digits}f}"


def print_attack_summary(run: AttackRun) -> None:
    """Per-trial and overall leakage: PSNR, SSIM, label accuracy, wall time; the threat model."""
    s = run.summary
    tm = s["threat_model"]
    table = Table(
        title=f"{s['attack']} against {tm['user_type']} (batch {tm['batch']}), codec {tm['uplink_codec']}"
    )
    for col in ("trial", "PSNR median (dB)", "SSIM median", "label acc.", "wall (s)", "labels from"):
        table.add_column(col, justify="right" if col != "labels from" else "left")
    for t in run.trials:
        psnrs = sorted(x.psnr for x in t.samples)
        ssims = sorted(x.ssim for x in t.samples)
        acc = sum(x.label_correct for x in t.samples) / len(t.samples)
        table.add_row(
            str(t.trial),
            _fmt(psnrs[len(psnrs) // 2]),
            _fmt(ssims[len(ssims) // 2], 3),
            f"{acc:.2f}",
            f"{t.wall_s:.1f}",
            str(t.diagnostics.get("label_source", "")),
        )
    table.add_row(
        "all",
        _fmt(s["psnr_median"]),
        _fmt(s["ssim_median"], 3),
        f"{s['label_accuracy']:.2f}",
        f"{s['wall_s']:.1f}",
        f"best PSNR {_fmt(s['psnr_best'])} dB",
        style="bold",
    )
    console.print(table)
    shared = [k.removeprefix("shares_") for k, v in tm.items() if k.startswith("shares_") and v]
    console.print(
        f"threat model: shares {', '.join(shared) or 'nothing but the update'}; "
        f"local privacy {tm['local_privacy']} (unaccounted); model trained for {tm['model_rounds']} rounds"
    )
    if run.run_dir is not None:
        console.print(f"written: {run.run_dir}/ (grid.png, metrics.csv, summary.json, config.yaml)")
