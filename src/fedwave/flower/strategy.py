"""A Flower strategy wrapper that decodes fedwave codec payloads before the wrapped strategy aggregates.

``CodecStrategy(FedAvg(...), "uniform:8")`` behaves as the wrapped strategy, except that:

- ``configure_train`` remembers the global model it sends and tells the clients the codec
  (``fedwave-codec`` in the train config, read by :class:`~fedwave.flower.mod.CodecMod`);
- ``aggregate_train`` decodes each reply's payload against the layout of that global model
  (``codec.decode(payload, expected=...)``: a payload for other shapes is refused before any allocation),
  rebuilds the client's model as global + update and hands the wrapped strategy ordinary replies. A reply
  whose payload is missing, of another codec or undecodable becomes an error reply (the wrapped strategy
  logs it as a failure and leaves it out); :attr:`CodecStrategy.log` names it with the reason.

Numerics: the rebuilt models are handed over in float64 (global + update is exact there), so the wrapped
strategy's weighted mean adds no float32 rounding; the result is brought back to each array's dtype as
``global + (mean - global)`` rounded once, which is how fedwave's BS applies a mean update (``w + mean``
in float32). With equal updates the two give the same bits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedwave.codecs import get_codec, metas_of
from fedwave.errors import PayloadError
from fedwave.flower.wire import CODEC_CONFIG, ENCODES_METRIC, PAYLOAD_KEY, float_only, to_record, to_tensors


@dataclass(frozen=True)
class Rejection:
    """A reply left out of aggregation: the node and why."""

    node_id: int
    reason: str


@dataclass
class RoundLog:
    """What one training round carried, per UE (the ``ue`` the mod names): payload length (bytes), its
    SHA-256, the UE's count of encodes so far with this codec; and the rejected replies."""

    round: int
    payload_bytes: dict[int, int] = field(default_factory=dict)
    payload_sha256: dict[int, str] = field(default_factory=dict)
    encodes: dict[int, int] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)


class CodecStrategy(Strategy):
    """Wrap ``strategy`` so that it aggregates models rebuilt from fedwave codec payloads.

    Args:
        strategy: the Flower strategy that aggregates (e.g. ``flwr.serverapp.strategy.FedAvg``).
        codec: the codec spec every client encodes with (checked against each payload's spec).

    Attributes:
        log: one :class:`RoundLog` per training round, in order.
    """

    def __init__(self, strategy: Strategy, codec: str) -> None:
        self.inner = strategy
        self.codec = get_codec(codec)
        self.log: list[RoundLog] = []
        self._sent: dict[int, ArrayRecord] = {}

    def summary(self) -> None:
        """The wrapped strategy's summary."""
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's train messages, with the codec spec in the config."""
        float_only(arrays, "global model")
        self._sent = {server_round: arrays}
        config[CODEC_CONFIG] = self.codec.spec
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Decode every reply, let the wrapped strategy aggregate, return the model in its dtypes."""
        sent = self._sent.get(server_round)
        if sent is None:
            raise RuntimeError(f"aggregate_train for round {server_round} without configure_train")
        log = RoundLog(server_round)
        self.log.append(log)
        decoded = [self._decode(msg, sent, log) for msg in replies]
        arrays, metrics = self.inner.aggregate_train(server_round, decoded)
        if arrays is None:
            return None, metrics
        if list(arrays.keys()) != list(sent.keys()):
            raise RuntimeError(f"the wrapped strategy returned arrays {list(arrays.keys())}")
        out = []
        for g, m in zip(to_tensors(sent), to_tensors(arrays)):
            step = (m.to(torch.float64) - g.to(torch.float64)).to(g.dtype)
            out.append(g + step)
        return to_record(list(sent.keys()), out), metrics

    def _decode(self, msg: Message, sent: ArrayRecord, log: RoundLog) -> Message:
        if msg.has_error():
            return msg
        node = msg.metadata.src_node_id
        try:
            content = self._rebuild(msg.content, sent, log)
        except PayloadError as exc:
            log.rejected.append(Rejection(node, str(exc)))
            reason = f"fedwave: update of node {node} rejected: {exc}"
            return _replace(msg, Error(code=ErrorCode.UNKNOWN, reason=reason))
        return _replace(msg, content)

    def _rebuild(self, content: RecordDict, sent: ArrayRecord, log: RoundLog) -> RecordDict:
        record = content.config_records.get(PAYLOAD_KEY)
        if record is None:
            raise PayloadError(
                f"the reply holds no '{PAYLOAD_KEY}' record: add fedwave.flower.CodecMod to the "
                "ClientApp's mods"
            )
        payload, spec, key, ue = (record.get(k) for k in ("payload", "codec", "arrays-key", "ue"))
        if not isinstance(payload, bytes) or not isinstance(key, str) or not isinstance(ue, int):
            raise PayloadError(f"the '{PAYLOAD_KEY}' record lacks its payload bytes, arrays-key or ue")
        if spec != self.codec.spec:
            raise PayloadError(f"payload encoded with codec {spec!r}, expected {self.codec.spec!r}")
        if content.array_records:
            raise PayloadError(
                "the reply holds an ArrayRecord besides the payload (only the payload may travel)"
            )
        globals_ = to_tensors(sent)
        update = self.codec.decode(payload, expected=metas_of(globals_))
        if not all(bool(torch.isfinite(u).all()) for u in update):
            raise PayloadError("the decoded update holds NaN or Inf")
        model = [g.to(torch.float64) + u.to(torch.float64) for g, u in zip(globals_, update)]
        log.payload_bytes[ue] = len(payload)
        log.payload_sha256[ue] = hashlib.sha256(payload).hexdigest()
        rebuilt = RecordDict()
        for name, rec in content.items():
            if name == PAYLOAD_KEY:
                continue
            if isinstance(rec, MetricRecord) and ENCODES_METRIC in rec:
                metrics = dict(rec)
                log.encodes[ue] = int(metrics.pop(ENCODES_METRIC))  # type: ignore[arg-type]
                rec = MetricRecord(metrics)
            rebuilt[name] = rec
        rebuilt[key] = to_record(list(sent.keys()), model)
        return rebuilt

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's evaluate messages."""
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """The wrapped strategy's evaluation aggregate."""
        return self.inner.aggregate_evaluate(server_round, replies)


def _replace(msg: Message, body: RecordDict | Error) -> Message:
    """``msg`` (same metadata: sender, reply-to, round) with ``body`` as its content or error.

    Flower builds a message from existing metadata this way when it inflates one; the typed overloads of
    ``Message`` do not list it.
    """
    return Message(body, metadata=msg.metadata)  # type: ignore[call-overload]


__all__ = ["CodecStrategy", "Rejection", "RoundLog"]
