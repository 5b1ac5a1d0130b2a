"""Summaries of a finished run: time split, bytes, energy, time-to-accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fedwave.records import RoundRecord, UEEvent


def time_to_accuracy(records: Sequence[RoundRecord], target: float) -> float | None:
    """Simulated seconds until test accuracy first reaches ``target`` (None if it never does)."""
    for r in records:
        if r.accuracy >= target:
            return r.t_end
    return None


def summarize(
    records: Sequence[RoundRecord], events: Sequence[UEEvent], target: float | None = None
) -> dict[str, Any]:
    """Totals and ratios of a run (seconds, bytes, joules); JSON-serialisable."""
    if not records:
        return {"rounds": 0}
    last = records[-1]
    compute = sum(r.time_compute for r in records)
    uplink = sum(r.time_uplink for r in records)
    ue_compute = [e.t_compute_end - e.t_compute_start for e in events if e.status != "skipped"]
    ue_uplink = [e.t_upload_end - e.t_upload_start for e in events if e.attempts > 0]
    mean_compute = sum(ue_compute) / len(ue_compute) if ue_compute else 0.0
    mean_uplink = sum(ue_uplink) / len(ue_uplink) if ue_uplink else 0.0
    energy_per_ue: dict[int, float] = {}
    for e in events:
        energy_per_ue[e.ue] = energy_per_ue.get(e.ue, 0.0) + e.energy_compute_j + e.energy_radio_j
    out: dict[str, Any] = {
        "rounds": len(records),
        "final_accuracy": last.accuracy,
        "best_accuracy": max(r.accuracy for r in records),
        "final_loss": last.loss,
        "simulated_time_s": last.t_end,
        "time_compute_s": compute,
        "time_uplink_s": uplink,
        "time_downlink_s": sum(r.time_downlink for r in records),
        "time_queue_s": sum(r.time_queue for r in records),
        "time_wait_s": sum(r.time_wait for r in records),
        "mean_ue_compute_s": mean_compute,
        "mean_ue_uplink_s": mean_uplink,
        "uplink_compute_ratio": mean_uplink / mean_compute if mean_compute > 0 else math.inf,
        "bytes_up": sum(r.bytes_up for r in records),
        "bytes_down": sum(r.bytes_down for r in records),
        "energy_j": sum(r.energy_j for r in records),
        "energy_per_ue_j": energy_per_ue,
        "dropped": sum(r.dropped for r in records),
        "lost": sum(r.lost for r in records),
        "skipped": sum(r.skipped for r in records),
        "rejected": sum(r.rejected for r in records),
        "silent": sum(r.silent for r in records),
        "rolled_back": sum(r.rolled_back for r in records),
        "unaggregated": int(sum(r.extra.get("unaggregated", 0.0) for r in records)),
    }
    if target is not None:
        out["target_accuracy"] = target
        out["time_to_accuracy_s"] = time_to_accuracy(records, target)
    return out
