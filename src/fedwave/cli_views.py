"""What the command line shows: the progress bar, the run summary, the cell description."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedwave.records import RoundRecord, UEEvent

console = Console(soft_wrap=True)


@contextlib.contextmanager
def round_progress(rounds: int, *, quiet: bool = False) -> Iterator[Any]:
    """A progress bar over rounds; yields the per-round hook that advances it.

    The bar appears at the first finished round, so a run that fails while being built prints only
    its error.
    """
    if quiet:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("", total=rounds, start=False)

    def hook(record: RoundRecord, events: Sequence[UEEvent]) -> None:
        if not progress.live.is_started:
            progress.start()
            progress.start_task(task)
        eps = "" if record.epsilon is None else f"  eps {format_epsilon(record.epsilon)}"
        progress.update(
            task,
            advance=1,
            description=(
                f"acc {record.accuracy:.3f}  sim t {record.t_end:,.1f} s  up {record.bytes_up / 1e6:.2f} MB"
                + eps
            ),
        )

    try:
        yield hook
    finally:
        if progress.live.is_started:
            progress.stop()


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n} GB"


def format_epsilon(eps: float | None) -> str:
    """Epsilon for people: 4 significant digits, ``inf`` (no noise or no clipping), ``—`` (no DP)."""
    if eps is None or math.isnan(eps):
        return "—"
    return "inf" if math.isinf(eps) else f"{eps:.4g}"


def privacy_line(privacy: dict[str, Any] | None) -> str | None:
    """The summary's privacy row: epsilon at delta and how it was obtained; None for a run without any.

    The users.md local noise (``local_privacy``) is shown as "unaccounted" (absolute scale, no epsilon).
    """
    if not privacy:
        return None
    parts = []
    if privacy.get("level", "off") != "off":
        where = privacy.get("placement")
        how = f"client level, {where} noise" if privacy["level"] == "client" else "sample level (DP-SGD)"
        text = (
            f"epsilon {format_epsilon(privacy['epsilon'])} at delta {privacy['delta']:g} ({how}, "
            f"z = {privacy['noise_multiplier']:.4g}, clip {privacy['clip']}, {privacy['accountant']})"
        )
        if privacy.get("target_epsilon") is not None:
            text += f"; z calibrated for dp.target_epsilon {privacy['target_epsilon']:g}"
        ue = privacy.get("ue_epsilons")
        if ue:
            text += (
                f"; largest over UEs, median {format_epsilon(ue['median'])}, min {format_epsilon(ue['min'])}"
            )
        counts = [
            f"{privacy[k]} {label}"
            for k, label in (
                ("clipped_ue", "updates clipped on the UE"),
                ("zeroed_ue", "non-finite updates sent as zeros"),
                ("clipped_bs", "clipped again at the BS"),
            )
            if privacy.get(k)
        ]
        if counts:
            text += "; " + ", ".join(counts)
        if privacy.get("stopped_at_epsilon"):
            text += f"; {privacy['stop_reason']}"
        parts.append(text)
    if privacy.get("local_privacy"):
        lp = privacy["local_privacy"]
        parts.append(
            "local_privacy noise unaccounted (users.md absolute scale: "
            f"gradient_noise {lp['gradient_noise']}, "
            f"input_noise {lp['input_noise']}, per_example_clipping {lp['per_example_clipping']})"
        )
    return "; ".join(parts) if parts else None


def print_run_summary(result: Any) -> None:
    """The summary table of a finished run."""
    s = result.summary
    cfg = result.config
    t = Table(
        title=f"fedwave run: {cfg.data.dataset}, {cfg.model.name}, codec {cfg.codec.uplink}, "
        f"{cfg.wireless.policy.name} policy",
        show_header=False,
    )
    t.add_column("metric", style="bold")
    t.add_column("value")
    t.add_row("rounds", str(s["rounds"]))
    t.add_row("final test accuracy", f"{s['final_accuracy']:.4f} (best {s['best_accuracy']:.4f})")
    t.add_row("final test loss", f"{s['final_loss']:.4f}")
    total = s["simulated_time_s"]
    t.add_row("simulated time", f"{total:,.2f} s")
    for key, label in (
        ("time_compute_s", "compute"),
        ("time_uplink_s", "uplink"),
        ("time_downlink_s", "downlink"),
        ("time_queue_s", "queue (channel)"),
        ("time_wait_s", "waiting"),
    ):
        share = s[key] / total * 100 if total > 0 else 0.0
        t.add_row(f"  {label}", f"{s[key]:,.2f} s ({share:.0f}%)")
    ratio = s["uplink_compute_ratio"]
    same = "yes" if 0.1 <= ratio <= 10 else "no"
    t.add_row(
        "uplink / compute per UE",
        f"{s['mean_ue_uplink_s']:.3f} s / {s['mean_ue_compute_s']:.3f} s = {ratio:.2f} "
        f"(same order of magnitude, within 10x: {same})",
    )
    t.add_row("bytes up / down", f"{_fmt_bytes(s['bytes_up'])} / {_fmt_bytes(s['bytes_down'])}")
    t.add_row("energy (all UEs)", f"{s['energy_j']:,.2f} J")
    counts = ", ".join(
        f"{k.replace('_', ' ')} {s[k]}"
        for k in ("dropped", "lost", "skipped", "rejected", "rolled_back", "unaggregated", "silent")
        if k in s
    )
    t.add_row("updates", counts)
    line = privacy_line(s.get("privacy"))
    if line is not None:
        t.add_row("privacy", line)
    if "time_to_accuracy_s" in s:
        tta = s["time_to_accuracy_s"]
        t.add_row(
            f"time to accuracy {s['target_accuracy']}", "not reached" if tta is None else f"{tta:,.2f} s"
        )
    if result.run_dir is not None:
        t.add_row("run directory", str(result.run_dir))
    console.print(t)
    if math.isnan(s["final_accuracy"]):
        console.print("[red]the final accuracy is NaN: check the learning rates[/red]")


def describe_cell_for(cfg: Any) -> str:
    """The ``fedwave cell`` table for a config: per UE distance, SNR, rate, upload and compute time."""
    import torch

    from fedwave.codecs import get_codec
    from fedwave.data.federated import dataset_for, partition_for
    from fedwave.devices import training_flops_per_sample
    from fedwave.models import build_model
    from fedwave.rng import derive_seed, torch_generator
    from fedwave.sim import Clock, describe_cell, format_cell

    ds = dataset_for(cfg)
    parts = partition_for(cfg, ds.y_train.numpy())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "model-init"))
        model = build_model(cfg.model.name, tuple(ds.input_shape), ds.num_classes)
    params = [p.detach() for p in model.parameters()]
    payload = len(get_codec(cfg.codec.uplink).encode(params, rng=torch_generator(cfg.seed, "cell"), state={}))
    flops = training_flops_per_sample(model, tuple(ds.input_shape), ds.num_classes)
    clock = Clock(cfg.wireless, cfg.fl.num_ues, flops, cfg.seed)
    epochs = cfg.fl.local_epochs if cfg.fl.algorithm == "fedavg" else 1
    per_round = cfg.fl.per_round()
    entries = sum(p.numel() for p in params)
    samples = [epochs * len(p) for p in parts]
    rows = describe_cell(clock, payload, samples, uploaders=per_round, entries=entries)
    scheme = cfg.wireless.access.scheme
    update = (
        f"analog update of {entries:,} entries ({(entries + 1) // 2:,} symbols, whatever the number of UEs)"
        if scheme == "aircomp"
        else f"update of {payload:,} bytes with codec {cfg.codec.uplink}"
    )
    head = (
        f"cell: {cfg.fl.num_ues} UEs, {per_round} uploading per round, {scheme.upper()}, {update}, "
        f"{flops:,.0f} training FLOP/sample"
    )
    return head + "\n" + format_cell(rows)
