"""Checkpoints of a running simulation: bytes that restore it exactly after a finished round.

A checkpoint holds the driver's state (global model, server optimizer, broadcast copy, per-UE codec and
event-trigger state, query counts), the clock's position (simulated time, next round) and the clock's
state across rounds (``Clock.state_dict``: the Gauss-Markov fading processes, with their streams'
positions; empty for i.i.d. fading). Every other random stream is derived from (seed, round, UE, purpose),
so no other generator state needs saving: a resumed run continues bit for bit. The asynchronous policy
keeps UEs in flight across aggregation steps, so its runs are not checkpointed between rounds (a resume
restarts them; the result is the same).

The bytes are guarded by the store's SHA-256 (:mod:`fedwave.report.integrity`); a blob that still cannot
be restored (written by another fedwave version, say) raises :class:`CheckpointError`.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from fedwave.errors import FedwaveError
from fedwave.fl.run import Simulation

FORMAT = 1


class CheckpointError(FedwaveError):
    """A checkpoint cannot be restored into this simulation; the run must restart from round 0."""


def resumable(sim: Simulation) -> bool:
    """Whether the run can be resumed from a between-rounds checkpoint (not for ``async``)."""
    return sim.cfg.wireless.policy.name != "async"


def save_checkpoint(sim: Simulation, *, t_now: float, next_round: int) -> bytes:
    """Serialise the simulation's state after a finished round."""
    state: dict[str, Any] = {
        "format": FORMAT,
        "driver": sim.driver.state_dict(),
        "clock": sim.clock.state_dict(),
        "t_now": float(t_now),
        "next_round": int(next_round),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_checkpoint(sim: Simulation, blob: bytes) -> None:
    """Restore a state written by :func:`save_checkpoint` into a freshly built simulation."""
    try:
        state = torch.load(io.BytesIO(blob), weights_only=True)
    except Exception as exc:  # a torn or foreign blob: say so instead of a deep traceback
        raise CheckpointError(f"checkpoint could not be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError("checkpoint has an unknown format (not written by this fedwave)")
    try:
        sim.driver.load_state_dict(state["driver"])
        sim.clock.load_state_dict(state.get("clock", {}))
        sim.t_now = float(state["t_now"])
        sim.next_round = int(state["next_round"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise CheckpointError(
            f"checkpoint does not fit this run's simulation ({type(exc).__name__}: {exc})"
        ) from None
