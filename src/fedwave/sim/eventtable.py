"""A round's UE events held as columns: a read-only sequence of :class:`UEEvent` built on first access.

The vectorised clock (:mod:`fedwave.sim.vround`) times thousands of UEs with numpy; making a Python
object per UE and round would cost more than the timing itself. :class:`EventTable` keeps the columns
and makes the :class:`UEEvent` objects only when someone reads them (once; later reads, and changes a
driver makes to them, see the same objects). :func:`event_columns` gives the columns of any sequence
of events, so round records are computed the same way from either.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from fedwave.records import UEEvent

#: Float columns (simulated s, bit/s, J, Hz) in UEEvent field order.
FLOAT_FIELDS = (
    "t_download_start",
    "t_download_end",
    "t_compute_start",
    "t_compute_end",
    "t_upload_start",
    "t_upload_end",
    "rate_up_bps",
    "energy_compute_j",
    "energy_radio_j",
    "bandwidth_hz",
    "cpu_hz",
)
#: Integer columns.
INT_FIELDS = ("ue", "bytes_up", "bytes_down", "samples", "attempts")


class EventTable(Sequence[UEEvent]):
    """The events of one round, one row per UE.

    Args:
        round: the round number.
        columns: ``FLOAT_FIELDS`` and ``INT_FIELDS`` as 1-D arrays of one length, plus ``snr_up``
            (mean uplink SNR, linear; the event holds it in dB).
        status: one status string per row.
        behaviour: one behaviour string per row.
    """

    def __init__(
        self,
        round: int,
        columns: dict[str, NDArray[Any]],
        status: Sequence[str],
        behaviour: Sequence[str],
    ) -> None:
        self.round = int(round)
        self.columns = columns
        self.status = list(status)
        self.behaviour = list(behaviour)
        self._events: list[UEEvent] | None = None

    def __len__(self) -> int:
        return len(self.status)

    def row(self, i: int) -> UEEvent:
        """Row ``i`` as a new :class:`UEEvent` (not the object the sequence hands out)."""
        c = self.columns
        snr = float(c["snr_up"][i])
        return UEEvent(
            round=self.round,
            status=self.status[i],
            snr_up_db=10.0 * math.log10(snr) if snr > 0 else -math.inf,
            behaviour=self.behaviour[i],
            **{f: c[f][i].item() for f in (*FLOAT_FIELDS, *INT_FIELDS)},
        )

    def _materialize(self) -> list[UEEvent]:
        if self._events is None:
            self._events = [self.row(i) for i in range(len(self.status))]
        return self._events

    @overload
    def __getitem__(self, i: int) -> UEEvent: ...

    @overload
    def __getitem__(self, i: slice) -> list[UEEvent]: ...

    def __getitem__(self, i: int | slice) -> UEEvent | list[UEEvent]:
        return self._materialize()[i]

    def __iter__(self) -> Iterator[UEEvent]:
        return iter(self._materialize())


def event_columns(events: Sequence[UEEvent]) -> tuple[dict[str, NDArray[Any]], list[str]]:
    """The float and int columns and the statuses of ``events`` (of an :class:`EventTable` not yet read,
    without making the objects)."""
    if isinstance(events, EventTable) and events._events is None:
        return events.columns, events.status
    cols: dict[str, NDArray[Any]] = {
        f: np.array([getattr(e, f) for e in events], dtype=float) for f in FLOAT_FIELDS
    }
    cols.update({f: np.array([getattr(e, f) for e in events], dtype=np.int64) for f in INT_FIELDS})
    return cols, [e.status for e in events]
