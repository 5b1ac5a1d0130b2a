"""The seam between the clock (simulated time) and the FL logic (a driver written elsewhere).

The clock decides *when* things happen on the air; the driver decides *what* is computed. The clock calls
the driver at these moments of simulated time (none of the calls take simulated time themselves):

- ``observe_radio`` (optional; a driver without it is not called): at the start of a synchronous round,
  just before ``select``, with the round's :class:`~fedwave.sim.radio.RadioView` (the BS's channel
  estimate), for channel-aware selection rules;
- ``select``: at the start of a round (async: whenever a training slot frees up);
- ``broadcast_bytes``: when the BS is about to send the current model;
- ``local_updates``: when the BS sends model ``version`` to a group of UEs (the selected UEs of a round,
  or the UEs of one async dispatch): the host computes what each UE will send; the clock then plays out
  the download, the device's compute time and the upload;
- ``aggregate``: when the round's policy closes the round (async: after every ``buffer_k`` arrivals),
  with every update that counts — each handle is aggregated at most once;
- ``discard``: for every handle that will never be aggregated (lost, dropped, silent, or still in flight
  when the run ends), with the reason, so that nothing is left pending and no update is counted twice;
- ``end_round``: right after ``aggregate``, with the round's record and per-UE timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Protocol, runtime_checkable

from fedwave.records import RoundRecord, UEEvent


@dataclass(slots=True)
class LocalResult:
    """What a UE's local update produced, as far as the air is concerned.

    Attributes:
        payload_bytes: length in bytes of the encoded uplink message (the codec's output, measured).
        samples_processed: samples processed in local training (epochs x samples); drives compute time.
        skip: event-triggered: the UE sends only a short "no update" message (``skip_message_bytes``).
        handle: opaque reference for the driver, handed back in :class:`Arrival` or ``discard``; unique
            per call (a UE dispatched twice has two handles).
        silent: the UE never answers (a fault): it computes but sends nothing.
        behaviour: ``"honest"`` or the name of the fault/attack the UE applies (recorded per UE).
    """

    payload_bytes: int
    samples_processed: int
    skip: bool = False
    handle: object = None
    silent: bool = False
    behaviour: str = "honest"


@dataclass(slots=True)
class Arrival:
    """An update (or a "no update" message, ``skip=True``) that reached the BS and counts for aggregation.

    Attributes:
        ue: the UE id.
        handle: the ``LocalResult.handle`` of that update.
        staleness: BS model version at aggregation minus the version the UE trained on (0 when synchronous).
        weight: staleness weight 1 / sqrt(1 + staleness) (1.0 when synchronous).
        skip: the UE sent a "no update" message instead of an update.
    """

    ue: int
    handle: object
    staleness: int
    weight: float
    skip: bool


#: Largest byte or sample count a :class:`LocalResult` may give (the clock's columns are int64).
MAX_COUNT = 2**62


def check_local_result(ue: int, result: object) -> None:
    """Raise if ``result`` (UE ``ue``'s answer to ``Driver.local_updates``) is not a valid LocalResult."""
    if not isinstance(result, LocalResult):
        raise TypeError(f"UE {ue}: the driver returned {type(result).__name__}, not a LocalResult")
    b, n = result.payload_bytes, result.samples_processed
    if type(b) is int and type(n) is int and 0 <= b <= MAX_COUNT and 0 <= n <= MAX_COUNT:
        return  # the usual case, without the ABC check (this runs for every UE of every round)
    if not all(isinstance(v, Integral) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT for v in (b, n)):
        raise ValueError(
            f"UE {ue}: LocalResult needs payload_bytes >= 0 and samples_processed >= 0, integers up to "
            f"2^62, got {result}"
        )


@runtime_checkable
class Driver(Protocol):
    """The FL side of a run, driven by :class:`~fedwave.sim.clock.Clock`."""

    def select(self, round: int, available: Sequence[int], count: int) -> list[int]:
        """The BS picks at most ``count`` distinct UEs among ``available`` (ascending UE ids)."""
        ...

    def broadcast_bytes(self) -> int:
        """Bytes of the current downlink model message."""
        ...

    def local_updates(self, round: int, ues: Sequence[int], version: int) -> list[LocalResult]:
        """Host work for UEs ``ues`` (ascending) that receive model ``version``; one result per UE, in order.

        Takes no simulated time.
        """
        ...

    def aggregate(self, round: int, arrivals: list[Arrival]) -> None:
        """BS step with the updates that count (possibly none); the model version increases by 1."""
        ...

    def discard(self, handles: list[object], reason: str) -> None:
        """Updates (by handle) that will never be aggregated, and why (a UE status: lost, dropped...)."""
        ...

    def end_round(self, record: RoundRecord, events: Sequence[UEEvent]) -> bool:
        """Receive the round's record and timeline (fill accuracy/loss); return False to stop the run."""
        ...
