"""From a round's UE timelines to its :class:`RoundRecord`: counts, bytes, energy and the time split.

The time split follows the critical path: the UE whose update (or loss) closed the round. Its phases,
intersected with the round's interval [t_start, t_end], give ``time_downlink`` (receiving the model),
``time_compute``, ``time_queue`` (waiting for a shared channel: the TDMA uplink after computing, and with
unicast downlinks the UE's turn, counted from the round start) and ``time_uplink`` (airtime, every
attempt); ``time_wait`` is the rest of the round (the BS idling until a deadline, or an async BS waiting
for a UE it dispatched later). The five sum to the round's duration. If no UE completed before the round
closed (a deadline that nobody met), the critical UE is the lowest-id selected UE, its timeline cut at
the close. In async rounds the closing UE is the one whose arrival filled the buffer; its phases before
t_start (it trained on an older model) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedwave.records import RoundRecord, UEEvent
from fedwave.sim.eventtable import event_columns

#: Statuses of a UE whose upload ended (its airtime and compute time are complete).
COMPLETED = ("arrived", "skipped", "lost")


def _overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def time_split(
    critical: UEEvent | None, t_start: float, t_end: float
) -> tuple[float, float, float, float, float]:
    """``(compute, uplink, downlink, queue, wait)`` in s on the critical UE's timeline (sum: duration)."""
    duration = t_end - t_start
    if critical is None:
        return 0.0, 0.0, 0.0, 0.0, duration
    c = critical
    dl = _overlap(c.t_download_start, c.t_download_end, t_start, t_end)
    cp = _overlap(c.t_compute_start, c.t_compute_end, t_start, t_end)
    up = _overlap(c.t_upload_start, c.t_upload_end, t_start, t_end)
    queue = _overlap(t_start, c.t_download_start, t_start, t_end) + _overlap(
        c.t_compute_end, c.t_upload_start, t_start, t_end
    )
    return cp, up, dl, queue, max(0.0, duration - cp - up - dl - queue)


def _total(values: NDArray[Any]) -> float:
    # summed in order, left to right (the same figure whatever the Python version's sum does)
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def uplink_compute_ratio(events: Sequence[UEEvent]) -> float:
    """Mean uplink airtime / mean compute time (both s) over the UEs whose upload ended; NaN if none."""
    cols, status = event_columns(events)
    return _ratio_and_means(cols, status)[0]


def _ratio_and_means(cols: dict[str, NDArray[Any]], status: Sequence[str]) -> tuple[float, float, float]:
    done = np.fromiter((s in COMPLETED for s in status), dtype=bool, count=len(status))
    n = int(done.sum())
    if not n:
        return math.nan, math.nan, math.nan
    up = _total(cols["t_upload_end"][done] - cols["t_upload_start"][done]) / n
    cp = _total(cols["t_compute_end"][done] - cols["t_compute_start"][done]) / n
    return (up / cp if cp > 0 else math.inf), up, cp


def build_record(
    round: int,
    t_start: float,
    t_end: float,
    events: Sequence[UEEvent],
    critical: UEEvent | None,
    bytes_down: int,
) -> RoundRecord:
    """The round's record.

    ``bytes_up`` sums the payload bytes of every message put on the air (the codec's bytes, also of
    messages cut by the close; headers and retransmissions show in airtime, not here); ``bytes_down`` is
    what the BS sent (a broadcast counts once); ``energy_j`` is the UEs' energy (compute + radio, J);
    ``samples`` the samples processed by all UEs of the round. ``extra`` holds ``uplink_compute_ratio``,
    ``airtime_mean_s``, ``compute_mean_s``, ``energy_compute_j`` and ``energy_radio_j``. Sums of floats
    are taken in event order, left to right. ``events`` may be an :class:`EventTable` (read as columns).
    """
    cp, up, dl, queue, wait = time_split(critical, t_start, t_end)
    cols, status = event_columns(events)
    counts = {s: 0 for s in ("arrived", "dropped", "lost", "skipped", "rejected", "silent", "rolled_back")}
    for s in status:
        if s in counts:
            counts[s] += 1
    ratio, airtime_mean, compute_mean = _ratio_and_means(cols, status)
    e_cp = _total(cols["energy_compute_j"])
    e_radio = _total(cols["energy_radio_j"])
    extra = {
        "uplink_compute_ratio": ratio,
        "airtime_mean_s": airtime_mean,
        "compute_mean_s": compute_mean,
        "energy_compute_j": e_cp,
        "energy_radio_j": e_radio,
    }
    return RoundRecord(
        round=round,
        t_start=t_start,
        t_end=t_end,
        time_compute=cp,
        time_uplink=up,
        time_downlink=dl,
        time_queue=queue,
        time_wait=wait,
        bytes_up=int(cols["bytes_up"].sum()),
        bytes_down=bytes_down,
        selected=len(status),
        arrived=counts["arrived"],
        dropped=counts["dropped"],
        lost=counts["lost"],
        skipped=counts["skipped"],
        rejected=counts["rejected"],
        silent=counts["silent"],
        rolled_back=counts["rolled_back"],
        samples=int(cols["samples"].sum()),
        energy_j=e_cp + e_radio,
        extra=extra,
    )
