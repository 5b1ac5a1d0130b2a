"""Per-UE codec state (error-feedback residuals) for thousands of UEs in bounded memory.

:class:`SpilledStates` is a mapping UE -> codec state that keeps the ``limit`` most recently used states
in memory and the others on disk (one ``torch.save`` file per UE in a private temporary directory,
removed when the mapping is collected or the process exits). Values round-trip exactly, so a run gives
the same results bit for bit whatever the limit; only memory and disk traffic change. A state handed
out by ``[]``/``get``/``setdefault`` must be used (mutated) before the next access to another UE: an
eviction writes the object as it is then (the FL driver uses each state immediately).
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import torch

State = dict[str, Any]


class SpilledStates(MutableMapping[int, State]):
    """UE id -> codec state; at most ``limit`` states in memory, the rest on disk."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = int(limit)
        self._hot: OrderedDict[int, State] = OrderedDict()
        self._cold: set[int] = set()
        self._dir = tempfile.TemporaryDirectory(prefix="fedwave-codec-state-")

    def _path(self, ue: int) -> Path:
        return Path(self._dir.name) / f"{ue}.pt"

    def _touch(self, ue: int, state: State) -> None:
        self._hot[ue] = state
        self._hot.move_to_end(ue)
        while len(self._hot) > self.limit:
            old, value = self._hot.popitem(last=False)
            torch.save(value, self._path(old))
            self._cold.add(old)

    def __getitem__(self, ue: int) -> State:
        if ue in self._hot:
            self._hot.move_to_end(ue)
            return self._hot[ue]
        if ue not in self._cold:
            raise KeyError(ue)
        state: State = torch.load(self._path(ue), weights_only=False)
        self._cold.discard(ue)
        self._path(ue).unlink()
        self._touch(ue, state)
        return state

    def __setitem__(self, ue: int, state: State) -> None:
        if ue in self._cold:
            self._cold.discard(ue)
            self._path(ue).unlink()
        self._touch(ue, state)

    def __delitem__(self, ue: int) -> None:
        if ue in self._hot:
            del self._hot[ue]
        elif ue in self._cold:
            self._cold.discard(ue)
            self._path(ue).unlink()
        else:
            raise KeyError(ue)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted([*self._hot, *self._cold]))

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold)

    def __contains__(self, ue: object) -> bool:
        return ue in self._hot or ue in self._cold

    def to_dict(self) -> dict[int, State]:
        """Every state as a plain dict (for checkpoints; loads the spilled ones, leaving them on disk)."""
        out = dict(self._hot)
        for ue in self._cold:
            out[ue] = torch.load(self._path(ue), weights_only=False)
        return {ue: out[ue] for ue in sorted(out)}
