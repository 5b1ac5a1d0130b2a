"""Summaries of a finished run: time split, bytes, energy, time-to-accuracy."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from fedwave.records import RoundRecord, UEEvent


def time_to_accuracy(records: Sequence[RoundRecord], target: float) -> float | None:
    """Simulated seconds until test accuracy first reaches ``target`` (None if it never does)."""
    for r in records:
        if r.accuracy >= target:
            return r.t_end
    return None


class EventTotals:
    """What the summary needs from the UE events, accumulated round by round in O(UEs) memory.

    A run that streams its events to disk (``timeline.csv``, the study store) feeds each round's events
    to :meth:`add` and keeps none of them. Sums are taken in event order, as :func:`summarize` over the
    list of all events would.
    """

    def __init__(self) -> None:
        self.compute_s = 0.0  # sum of UE compute durations (s), skipped updates excluded
        self.compute_n = 0
        self.uplink_s = 0.0  # sum of UE upload durations (s), UEs that sent at least one attempt
        self.uplink_n = 0
        self.energy_per_ue_j: dict[int, float] = {}

    def add(self, events: Iterable[UEEvent]) -> None:
        """Fold one round's (or any batch of) events in."""
        for e in events:
            if e.status != "skipped":
                self.compute_s += e.t_compute_end - e.t_compute_start
                self.compute_n += 1
            if e.attempts > 0:
                self.uplink_s += e.t_upload_end - e.t_upload_start
                self.uplink_n += 1
            self.energy_per_ue_j[e.ue] = (
                self.energy_per_ue_j.get(e.ue, 0.0) + e.energy_compute_j + e.energy_radio_j
            )


def summarize(
    records: Sequence[RoundRecord], events: Iterable[UEEvent] | EventTotals, target: float | None = None
) -> dict[str, Any]:
    """Totals and ratios of a run (seconds, bytes, joules); JSON-serialisable.

    ``events``: every UE event of the run, or their :class:`EventTotals`.
    """
    if not records:
        return {"rounds": 0}
    if not isinstance(events, EventTotals):
        totals = EventTotals()
        totals.add(events)
        events = totals
    last = records[-1]
    compute = sum(r.time_compute for r in records)
    uplink = sum(r.time_uplink for r in records)
    mean_compute = events.compute_s / events.compute_n if events.compute_n else 0.0
    mean_uplink = events.uplink_s / events.uplink_n if events.uplink_n else 0.0
    energy_per_ue = dict(events.energy_per_ue_j)
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
