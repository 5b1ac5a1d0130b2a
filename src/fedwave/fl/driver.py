"""The federated-learning side of a round, driven by the simulated clock.

The clock (``fedwave.sim``) decides *when* things happen; this driver decides *what* happens:

    select UEs -> UE trains (users) -> encode update (codecs) -> [air: clock]
      -> BS decodes, rejects NaN/Inf, aggregates (server) -> evaluate -> record

Randomness is derived from (seed, round, UE, purpose): selection, local training, encoding. The
driver's state between rounds (global model, optimizer, broadcast copy, per-UE codec and trigger state)
is captured by :meth:`FederatedDriver.state_dict` for checkpoints.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fedwave.codecs import Codec, CodecState, get_codec
from fedwave.config import Config
from fedwave.engine import Executor
from fedwave.errors import PayloadError
from fedwave.records import RoundRecord, UEEvent
from fedwave.rng import numpy_generator, torch_generator
from fedwave.server import BaseStation, ReceivedUpdate
from fedwave.sim.protocol import Arrival, LocalResult
from fedwave.sim.trigger import should_upload
from fedwave.users import User, UserDataSource, construct_user
from fedwave.users.privacy import global_norm
from fedwave.users.tensors import persistent_buffers

RoundCallback = Callable[[RoundRecord, list[UEEvent]], None]
_FP32 = "fp32"


@dataclass
class _Pending:
    """An encoded update between a UE's local training and the BS's decode."""

    ue: int
    message: bytes  # uplink codec bytes of the update
    buffers: bytes | None  # fp32 bytes of the UE's buffers (BatchNorm statistics), if any
    num_samples: int
    skip: bool


class FederatedDriver:
    """FL logic for the clock: selection, local updates, encoding, aggregation, evaluation.

    Args:
        cfg: the run configuration.
        model: the initial global model.
        data: the UEs' partitioned training data.
        x_test, y_test: the BS's held-out test split.
        executor: how client work is run (``fedwave.engine``).
        on_round: called with each finished round's record and UE events.
        metadata: dataset metadata carried in server payloads.
    """

    def __init__(
        self,
        cfg: Config,
        model: nn.Module,
        data: UserDataSource,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        executor: Executor,
        on_round: RoundCallback | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.seed = cfg.seed
        self.executor = executor
        self.on_round = on_round
        device = torch.device(cfg.engine.device)
        setup: dict[str, Any] = {"device": device, "dtype": torch.float32}
        self.loss_fn = nn.CrossEntropyLoss()
        self.bs = BaseStation(
            model,
            cfg.server,
            algorithm=cfg.fl.algorithm,
            weighting=cfg.fl.weighting,
            x_test=x_test.to(device),
            y_test=y_test.to(device),
            metadata=metadata,
        )
        # UEs train one after another, so they share one working copy of the model.
        working = copy.deepcopy(self.bs.model)
        base_user = cfg.user
        self.users: list[User] = [
            construct_user(
                model,
                self.loss_fn,
                _Case(base_user.model_copy(update={"user_idx": k}), cfg.seed),
                setup,
                data=data,
                seed=cfg.seed,
                working_model=working,
            )
            for k in range(cfg.fl.num_ues)
        ]
        self.uplink: Codec = get_codec(cfg.codec.uplink)
        self.downlink: Codec = get_codec(cfg.codec.downlink)
        self.raw: Codec = get_codec(_FP32)
        self.codec_state: dict[int, CodecState] = {}
        self.trigger = cfg.wireless.event_trigger
        self.last_uploaded: dict[int, list[torch.Tensor]] = {}
        self.last_update: dict[int, ReceivedUpdate] = {}
        # The model the UEs hold (the broadcast copy) and its downlink message, per BS version.
        self.broadcast_params = self.bs.parameters_snapshot()
        self.downlink_state: CodecState = {}
        self._payloads: dict[int, dict[str, Any]] = {}
        self._downlink_bytes: dict[int, int] = {}
        self._selected: dict[int, list[int]] = {}
        self._select_calls: dict[int, int] = {}
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._round_fate: dict[int, dict[int, str]] = {}
        self.records: list[RoundRecord] = []
        self._prepare_broadcast()

    # ------------------------------------------------------------------ downlink
    def _prepare_broadcast(self) -> None:
        """Encode the change of the global model since the last broadcast; update the UEs' copy."""
        version = self.bs.version
        current = self.bs.parameters_snapshot()
        if version == 0 or self.downlink.exact:
            msg = self.downlink.encode(current, rng=torch_generator(self.seed, "downlink", version))
            self.broadcast_params = current if self.downlink.exact else self.downlink.decode(msg)
        else:
            delta = [c - b for c, b in zip(current, self.broadcast_params)]
            msg = self.downlink.encode(
                delta, rng=torch_generator(self.seed, "downlink", version), state=self.downlink_state
            )
            decoded = self.downlink.decode(msg)
            self.broadcast_params = [b + d for b, d in zip(self.broadcast_params, decoded)]
        payload = self.bs.payload()
        payload["parameters"] = [p.clone() for p in self.broadcast_params]
        size = len(msg)
        if payload["buffers"] is not None:
            size += len(
                self.raw.encode(
                    [b.float() for b in payload["buffers"]], rng=torch_generator(self.seed, "buf")
                )
            )
        self._payloads[version] = payload
        self._downlink_bytes[version] = size
        for old in [v for v in self._payloads if v < version - 64]:
            del self._payloads[old], self._downlink_bytes[old]

    def broadcast_bytes(self) -> int:
        """Bytes of the current downlink message (codec bytes of the model change, plus buffers)."""
        return self._downlink_bytes[self.bs.version]

    # ------------------------------------------------------------------ selection
    def select(self, round: int, available: Sequence[int], count: int) -> list[int]:
        """``count`` UEs drawn uniformly without replacement from ``available`` (sorted ids)."""
        call = self._select_calls.get(round, 0)
        self._select_calls[round] = call + 1
        pool = sorted(available)
        rng = numpy_generator(self.seed, "select", round, call)
        chosen = sorted(
            int(pool[i]) for i in rng.choice(len(pool), size=min(count, len(pool)), replace=False)
        )
        self._selected.setdefault(round, []).extend(chosen)
        return chosen

    # ------------------------------------------------------------------ local work
    def _train(self, task: tuple[int, int, int]) -> tuple[int, dict[str, Any]]:
        round, ue, version = task
        shared, _ = self.users[ue].compute_local_updates(
            self._payloads[version], rng=torch_generator(self.seed, "train", round, ue)
        )
        return ue, shared

    def local_update(self, round: int, ue: int, version: int) -> LocalResult:
        """Train UE ``ue`` on model ``version``, decide whether to upload, encode the update."""
        if (round, ue) not in self._pending:
            # Run this round's selected UEs on the same version together through the executor.
            batch = [u for u in self._selected.get(round, [ue]) if (round, u) not in self._pending]
            batch = batch if ue in batch else [ue]
            for u, shared in self.executor.map(self._train, [(round, u, version) for u in batch]):
                self._pending[(round, u)] = self._encode(round, u, shared)
        pending = self._pending[(round, ue)]
        user = self.users[ue]
        epochs = self.cfg.fl.local_epochs if self.cfg.fl.algorithm == "fedavg" else 1
        return LocalResult(
            payload_bytes=(len(pending.message) + len(pending.buffers or b"")) if not pending.skip else 0,
            samples_processed=epochs * user.num_data_points,
            skip=pending.skip,
            handle=(round, ue),
        )

    def _encode(self, round: int, ue: int, shared: dict[str, Any]) -> _Pending:
        update: list[torch.Tensor] = [g.detach().cpu() for g in shared["gradients"]]
        skip = False
        if self.trigger.enabled:
            local = (
                [b + d for b, d in zip(self.broadcast_params, update)]
                if self.cfg.fl.algorithm == "fedavg"
                else update
            )
            last = self.last_uploaded.get(ue)
            if last is not None:
                delta = float(global_norm([a - b for a, b in zip(local, last)]))
                skip = not should_upload(
                    delta, float(global_norm(last)), self.trigger.threshold, self.trigger.mode
                )
            if not skip:
                self.last_uploaded[ue] = [t.clone() for t in local]
        num = shared["metadata"]["num_data_points"] or self.users[ue].num_data_points
        if skip:
            return _Pending(ue, b"", None, int(num), True)
        state = self.codec_state.setdefault(ue, {})
        message = self.uplink.encode(update, rng=torch_generator(self.seed, "codec", round, ue), state=state)
        bufs = shared["buffers"]
        buf_bytes = None
        if bufs:  # models without buffers send no buffer message at all
            buf_bytes = self.raw.encode(
                [b.detach().cpu().float() for b in bufs], rng=torch_generator(self.seed, "buf")
            )
        return _Pending(ue, message, buf_bytes, int(num), False)

    # ------------------------------------------------------------------ aggregation
    def aggregate(self, round: int, arrivals: list[Arrival]) -> None:
        """Decode the arrived updates (undecodable -> lost), aggregate, prepare the next broadcast."""
        fate = self._round_fate.setdefault(round, {})
        received: list[ReceivedUpdate] = []
        for a in arrivals:
            key = a.handle if isinstance(a.handle, tuple) else (round, a.ue)
            pending = self._pending.pop(key, None)
            if pending is None:
                continue
            if pending.skip:
                fate[a.ue] = "skipped"
                if self.trigger.on_skip == "reuse" and a.ue in self.last_update:
                    prev = self.last_update[a.ue]
                    received.append(
                        ReceivedUpdate(a.ue, prev.tensors, prev.num_samples, prev.buffers, a.weight)
                    )
                continue
            try:
                tensors = self.uplink.decode(pending.message)
                buffers = self._decode_buffers(pending.buffers)
            except PayloadError:
                fate[a.ue] = "undecodable"
                continue
            update = ReceivedUpdate(a.ue, tensors, pending.num_samples, buffers, a.weight)
            received.append(update)
            if self.trigger.enabled and self.trigger.on_skip == "reuse":
                self.last_update[a.ue] = update
        outcome = self.bs.aggregate(received)
        for ue in outcome.rejected:
            fate[ue] = "rejected"
        self._prepare_broadcast()

    def _decode_buffers(self, message: bytes | None) -> list[torch.Tensor] | None:
        if message is None:
            return None
        decoded = self.raw.decode(message)
        templates = persistent_buffers(self.bs.model)
        if len(decoded) != len(templates):
            raise PayloadError(
                f"buffers message holds {len(decoded)} tensors, the model has {len(templates)}"
            )
        return [
            d.to(t.dtype) if t.is_floating_point() else d.round().to(t.dtype)
            for d, t in zip(decoded, templates)
        ]

    def end_round(self, record: RoundRecord, events: list[UEEvent]) -> bool:
        """Evaluate, complete the record, hand it on; False stops the run (target reached)."""
        fate = self._round_fate.pop(record.round, {})
        for ev in events:
            if ev.ue in fate and ev.status == "arrived":
                ev.status = fate[ev.ue]
        record.rejected = sum(1 for s in fate.values() if s == "rejected")
        record.lost += sum(1 for s in fate.values() if s == "undecodable")
        record.arrived -= sum(1 for s in fate.values() if s in ("rejected", "undecodable"))
        record.samples = sum(ev.samples for ev in events if ev.status == "arrived")
        result = self.bs.evaluate()
        record.accuracy, record.loss = result.accuracy, result.loss
        record.bytes_down = record.bytes_down or sum(ev.bytes_down for ev in events)
        self.records.append(record)
        # Drop leftovers of UEs that never arrived (dropped / lost) in this round.
        for key in [k for k in self._pending if k[0] == record.round]:
            del self._pending[key]
        self._selected.pop(record.round, None)
        if self.on_round is not None:
            self.on_round(record, events)
        target = self.cfg.fl.target_accuracy
        return not (self.cfg.fl.stop_at_target and target is not None and record.accuracy >= target)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after a finished round (with the round-keyed RNG streams)."""
        return {
            "bs": self.bs.state_dict(),
            "broadcast_params": [t.clone() for t in self.broadcast_params],
            "downlink_state": self.downlink_state,
            "codec_state": self.codec_state,
            "last_uploaded": self.last_uploaded,
            "last_update": {k: (v.tensors, v.num_samples, v.buffers) for k, v in self.last_update.items()},
            "queries": [u.counted_queries for u in self.users],
            "downlink_bytes": self._downlink_bytes[self.bs.version],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next broadcast is rebuilt from the restored models."""
        self.bs.load_state_dict(state["bs"])
        self.downlink_state = state["downlink_state"]
        self.codec_state = state["codec_state"]
        self.last_uploaded = state["last_uploaded"]
        self.last_update = {k: ReceivedUpdate(k, t, n, b) for k, (t, n, b) in state["last_update"].items()}
        for u, q in zip(self.users, state["queries"]):
            u.counted_queries = q
        self._payloads.clear()
        self._downlink_bytes.clear()
        # Rebuild the current broadcast exactly as it was sent after the last aggregation.
        self.broadcast_params = [t.clone() for t in state["broadcast_params"]]
        payload = self.bs.payload()
        payload["parameters"] = [p.clone() for p in self.broadcast_params]
        self._payloads[self.bs.version] = payload
        self._downlink_bytes[self.bs.version] = int(state.get("downlink_bytes", 0))


class _Case:
    """A minimal ``cfg_case`` (``user`` section and seed) for ``construct_user``."""

    def __init__(self, user: Any, seed: int) -> None:
        self.user = user
        self.seed = seed
