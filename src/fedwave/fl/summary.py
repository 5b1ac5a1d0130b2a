"""Summaries of a finished run: time split, bytes, energy, time-to-accuracy."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from fedwave.records import RoundRecord, UEEvent


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


#: The record fields the summary totals (each summed over the rounds, in round order).
SUMMED: tuple[str, ...] = (
    "time_compute",
    "time_uplink",
    "time_downlink",
    "time_queue",
    "time_wait",
    "bytes_up",
    "bytes_down",
    "energy_j",
    "dropped",
    "lost",
    "skipped",
    "rejected",
    "silent",
    "rolled_back",
)


class RoundTotals:
    """What the summary needs from the round records, folded round by round in memory that does not grow
    with the rounds.

    A run that streams its records to disk (``rounds.csv``, the study store) feeds each record to
    :meth:`add` and keeps none. Kept: the last record, the sums of :data:`SUMMED` and of every
    ``extra`` key (in round order, as ``sum`` over the list would add them), the samples aggregated, and
    the rounds that raised the best accuracy so far (the first round to reach any accuracy target is one
    of them, so :meth:`time_to_accuracy` needs no other record; there are at most as many as distinct
    accuracies, which a finite test set bounds).
    """

    def __init__(self) -> None:
        self.rounds = 0
        self.last: RoundRecord | None = None
        self.best_accuracy = -math.inf
        self.sums: dict[str, int | float] = dict.fromkeys(SUMMED, 0)
        self.extra: dict[str, float] = {}  # sum of each RoundRecord.extra key over the rounds it appears in
        self.samples = 0  # samples behind the aggregated updates, all rounds
        self.improved: list[tuple[float, float]] = []  # (accuracy, t_end) of each new highest accuracy
        self._highest = -math.inf  # the highest accuracy so far (NaN never is)

    def add(self, record: RoundRecord) -> None:
        """Fold one round's record in."""
        if self.last is None or record.accuracy > self.best_accuracy:  # max()'s rule, NaN first included
            self.best_accuracy = record.accuracy
        if record.accuracy > self._highest:
            self._highest = record.accuracy
            self.improved.append((record.accuracy, record.t_end))
        self.rounds += 1
        self.last = record
        for key in SUMMED:
            self.sums[key] += getattr(record, key)
        for key, value in record.extra.items():
            self.extra[key] = self.extra.get(key, 0) + value
        self.samples += record.samples

    def time_to_accuracy(self, target: float) -> float | None:
        """Simulated seconds until test accuracy first reached ``target`` (None if it never did)."""
        for accuracy, t_end in self.improved:
            if accuracy >= target:
                return t_end
        return None


def summarize(
    records: Sequence[RoundRecord] | RoundTotals,
    events: Iterable[UEEvent] | EventTotals,
    target: float | None = None,
) -> dict[str, Any]:
    """Totals and ratios of a run (seconds, bytes, joules); JSON-serialisable.

    ``records``: every round record of the run, or their :class:`RoundTotals`; ``events``: every UE
    event of the run, or their :class:`EventTotals`.
    """
    if not isinstance(records, RoundTotals):
        folded = RoundTotals()
        for record in records:
            folded.add(record)
        records = folded
    last = records.last
    if last is None:
        return {"rounds": 0}
    if not isinstance(events, EventTotals):
        totals = EventTotals()
        totals.add(events)
        events = totals
    sums = records.sums
    mean_compute = events.compute_s / events.compute_n if events.compute_n else 0.0
    mean_uplink = events.uplink_s / events.uplink_n if events.uplink_n else 0.0
    energy_per_ue = dict(events.energy_per_ue_j)
    out: dict[str, Any] = {
        "rounds": records.rounds,
        "final_accuracy": last.accuracy,
        "best_accuracy": records.best_accuracy,
        "final_loss": last.loss,
        "simulated_time_s": last.t_end,
        "time_compute_s": sums["time_compute"],
        "time_uplink_s": sums["time_uplink"],
        "time_downlink_s": sums["time_downlink"],
        "time_queue_s": sums["time_queue"],
        "time_wait_s": sums["time_wait"],
        "mean_ue_compute_s": mean_compute,
        "mean_ue_uplink_s": mean_uplink,
        "uplink_compute_ratio": mean_uplink / mean_compute if mean_compute > 0 else math.inf,
        "bytes_up": sums["bytes_up"],
        "bytes_down": sums["bytes_down"],
        "energy_j": sums["energy_j"],
        "energy_per_ue_j": energy_per_ue,
        "dropped": sums["dropped"],
        "lost": sums["lost"],
        "skipped": sums["skipped"],
        "rejected": sums["rejected"],
        "silent": sums["silent"],
        "rolled_back": sums["rolled_back"],
        "unaggregated": int(records.extra.get("unaggregated", 0)),
    }
    if target is not None:
        out["target_accuracy"] = target
        out["time_to_accuracy_s"] = records.time_to_accuracy(target)
    return out
