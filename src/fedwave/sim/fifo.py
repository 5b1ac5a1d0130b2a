"""A channel that carries one message at a time (TDMA uplink, unicast downlink).

A BS process grants the channel in order of request time; requests made at the same simulated instant
are served lowest UE id first, whatever order the host happened to process them in.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator
from typing import Any

import simpy


class FifoChannel:
    """First come, first served; ties broken by UE id.

    A transmitter calls ``done = yield channel.request(ue)``, transmits, then ``done.succeed()``.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._queue: list[tuple[float, int, int, simpy.Event]] = []
        self._seq = 0
        self._wakeup: simpy.Event | None = None
        env.process(self._serve())

    def request(self, ue: int) -> simpy.Event:
        """Queue UE ``ue``; the event fires when the channel is granted, its value a release event."""
        grant = self._env.event()
        heapq.heappush(self._queue, (self._env.now, ue, self._seq, grant))
        self._seq += 1
        if self._wakeup is not None and not self._wakeup.triggered:
            self._wakeup.succeed()
        return grant

    def _serve(self) -> Generator[simpy.Event, Any, None]:
        env = self._env
        while True:
            if not self._queue:
                self._wakeup = env.event()
                yield self._wakeup
                self._wakeup = None
            # Give every transmitter that becomes ready at this instant the chance to queue up first.
            yield env.timeout(0)
            *_, grant = heapq.heappop(self._queue)
            done = env.event()
            grant.succeed(done)
            yield done
