"""Shared pieces of the wireless tests: a scriptable fake driver and small config builders."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from fedwave.records import RoundRecord, UEEvent
from fedwave.sim import Arrival, LocalResult, WirelessConfig


class FakeDriver:
    """A driver with scripted answers; it records every call.

    ``payload`` and ``samples`` are ints or functions of (round, ue); ``skip`` a set of UE ids (or a
    function of (round, ue)) that send a "no update" message.
    """

    def __init__(
        self,
        payload: int | Callable[[int, int], int] = 1000,
        samples: int | Callable[[int, int], int] = 10,
        skip: set[int] | Callable[[int, int], bool] = frozenset(),
        broadcast: int = 1000,
        stop_after: int | None = None,
    ) -> None:
        self._payload = payload
        self._samples = samples
        self._skip = skip
        self._broadcast = broadcast
        self.stop_after = stop_after
        self.selections: list[tuple[int, list[int], int]] = []
        self.updates: list[tuple[int, int, int]] = []
        self.aggregations: list[tuple[int, list[Arrival]]] = []
        self.records: list[RoundRecord] = []
        self.events: list[list[UEEvent]] = []
        self.discarded: list[tuple[str, list[object]]] = []
        self.channel_estimates: list[list[float]] = []  # the clock's radio view of each round (SNR, linear)
        self._handles = 0

    def observe_radio(self, view: Any) -> None:
        self.channel_estimates.append([float(x) for x in view.snr])

    def select(self, round: int, available: Sequence[int], count: int) -> list[int]:
        self.selections.append((round, list(available), count))
        return list(available)[:count]

    def broadcast_bytes(self) -> int:
        return self._broadcast

    def local_updates(self, round: int, ues: Sequence[int], version: int) -> list[LocalResult]:
        out = []
        for ue in ues:
            self.updates.append((round, ue, version))
            p = self._payload(round, ue) if callable(self._payload) else self._payload
            s = self._samples(round, ue) if callable(self._samples) else self._samples
            k = self._skip(round, ue) if callable(self._skip) else ue in self._skip
            self._handles += 1
            out.append(
                LocalResult(
                    payload_bytes=p, samples_processed=s, skip=k, handle=("h", round, ue, self._handles)
                )
            )
        return out

    def discard(self, handles: list[object], reason: str) -> None:
        self.discarded.append((reason, list(handles)))

    def aggregate(self, round: int, arrivals: list[Arrival]) -> None:
        self.aggregations.append((round, list(arrivals)))

    def end_round(self, record: RoundRecord, events: list[UEEvent]) -> bool:
        self.records.append(record)
        self.events.append(events)
        return self.stop_after is None or len(self.records) < self.stop_after


def hand_airtime(
    bits: float, snr: float, bandwidth_hz: float, block_s: float, fades: Sequence[float]
) -> float:
    """A scalar reference for a block-fading upload: block j (``block_s`` s) carries
    b log2(1 + snr x_j) block_s bits; the message ends in the first block that completes it."""
    t = 0.0
    for x in fades:
        rate = bandwidth_hz * math.log2(1 + snr * x)
        if rate * block_s >= bits:
            return t + bits / rate
        bits -= rate * block_s
        t += block_s
    raise AssertionError("the reference ran out of fading draws")


def quiet_cell(positions: list[tuple[float, float]], **overrides: Any) -> WirelessConfig:
    """A config with UEs at ``positions`` (m), no shadowing, no fading; ``overrides`` by dotted section."""
    data: dict[str, Any] = {
        "cell": {"positions_m": positions, "shadowing_db": 0.0, "fading": "none"},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        data.setdefault(section, {})
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return WirelessConfig.model_validate(data)


@pytest.fixture
def fake_driver() -> type[FakeDriver]:
    return FakeDriver


@pytest.fixture
def make_quiet_cell() -> Callable[..., WirelessConfig]:
    return quiet_cell
