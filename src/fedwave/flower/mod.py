"""A Flower client mod that sends the training update as a fedwave codec payload.

``ClientApp(mods=[CodecMod()])``: on a ``train`` message the mod lets the ClientApp train, then replaces
the reply's ``ArrayRecord`` (the trained model) by the bytes of ``codec.encode(trained - received)``
(see :mod:`fedwave.flower.wire` for the record). Other messages pass through untouched.

Randomness and state follow fedwave's UE exactly: the codec's generator is
``torch_generator(seed, "codec", round, ue)`` with ``round = server-round - 1`` and ``ue`` the node's
``partition-id``, and a stateful codec's per-UE state (error-feedback residual, PowerSGD factors) is kept
in the node's ``Context.state`` (one entry per codec spec), which Flower keeps across rounds. So the same
update encodes to the same bytes as in fedwave.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.constant import ErrorCode

from fedwave.codecs import Codec, get_codec
from fedwave.errors import FedwaveError, PayloadError
from fedwave.flower.wire import (
    CODEC_CONFIG,
    ENCODES_METRIC,
    PAYLOAD_KEY,
    ROUND_CONFIG,
    float_only,
    state_from_bytes,
    state_to_bytes,
    to_tensors,
)
from fedwave.rng import torch_generator

UeOf = Callable[[Context], int]
_STATE_PREFIX = "fedwave.codec-state."


def partition_ue(context: Context) -> int:
    """The UE id of a node: its ``partition-id`` (set by Flower's simulation engine for every node).

    Raises:
        PayloadError: the node has no ``partition-id``; pass ``ue_of`` to :class:`CodecMod`.
    """
    pid = context.node_config.get("partition-id")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
        raise PayloadError(
            f"node {context.node_id} has no integer partition-id in its node_config ({pid!r}); give "
            "CodecMod(ue_of=...) a function that returns the node's UE id"
        )
    return pid


class CodecMod:
    """Encode the update a ClientApp returns from training with a fedwave codec.

    Args:
        codec: a codec spec (``"uniform:8"``, ``"ef(topk:0.01)"``...). ``None``: use the spec the server's
            :class:`~fedwave.flower.strategy.CodecStrategy` sends in the train config (recommended: the
            codec is then set in one place). If both are given they must agree.
        seed: the run seed from which the codec's random streams are derived (fedwave's ``seed``).
        ue_of: the UE id of a node (default: its ``partition-id``).
    """

    def __init__(self, codec: str | None = None, *, seed: int = 0, ue_of: UeOf = partition_ue) -> None:
        self.spec = None if codec is None else get_codec(codec).spec
        self.seed = int(seed)
        self.ue_of = ue_of

    def __call__(self, msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        """Run the ClientApp; on a train reply, swap the trained model for the codec payload."""
        if msg.metadata.message_type.split(".")[0] != "train":
            return call_next(msg, context)
        try:
            codec, round_, received_key = self._setup(msg)
        except FedwaveError as exc:
            return _error(msg, f"CodecMod: {exc}")
        received = msg.content.array_records[received_key]
        reply = call_next(msg, context)
        if reply.has_error():
            return reply
        try:
            return self._encode_reply(msg, reply, context, codec, round_, received)
        except FedwaveError as exc:
            return _error(msg, f"CodecMod: {exc}")

    def _setup(self, msg: Message) -> tuple[Codec, int, str]:
        arrays = msg.content.array_records
        if len(arrays) != 1:
            raise PayloadError(
                f"a train message must hold one ArrayRecord (the global model), got {len(arrays)}"
            )
        config = {k: v for rec in msg.content.config_records.values() for k, v in rec.items()}
        sent = config.get(CODEC_CONFIG)
        if self.spec is None and sent is None:
            raise PayloadError(
                f"no codec: give CodecMod(codec=...) or wrap the server strategy in CodecStrategy "
                f"(it sends '{CODEC_CONFIG}' in the train config)"
            )
        spec = get_codec(str(sent)).spec if sent is not None else str(self.spec)
        if self.spec is not None and spec != self.spec:
            raise PayloadError(f"the server asks for codec {spec!r} but this mod encodes with {self.spec!r}")
        server_round = config.get(ROUND_CONFIG)
        if not isinstance(server_round, int) or server_round < 1:
            raise PayloadError(f"the train config holds no '{ROUND_CONFIG}' >= 1 (got {server_round!r})")
        return get_codec(spec), server_round - 1, next(iter(arrays))

    def _encode_reply(
        self, msg: Message, reply: Message, context: Context, codec: Codec, round_: int, received: ArrayRecord
    ) -> Message:
        content = reply.content
        if len(content.array_records) != 1:
            raise PayloadError(
                f"the ClientApp's train reply must hold one ArrayRecord, got {len(content.array_records)}"
            )
        key, trained = next(iter(content.array_records.items()))
        float_only(received, "global model")
        float_only(trained, "trained model")
        if list(trained.keys()) != list(received.keys()):
            raise PayloadError(
                f"the trained model's arrays {list(trained.keys())} differ from the received ones "
                f"{list(received.keys())}"
            )
        new, old = to_tensors(trained), to_tensors(received)
        for k, a, b in zip(trained.keys(), new, old):
            if a.shape != b.shape or a.dtype != b.dtype:
                raise PayloadError(
                    f"array {k!r}: trained {tuple(a.shape)} {a.dtype} vs received {tuple(b.shape)} {b.dtype}"
                )
        update = [a - b for a, b in zip(new, old)]
        ue = self.ue_of(context)
        slot = _STATE_PREFIX + codec.spec
        stored = context.state.config_records.get(slot)
        state = state_from_bytes(bytes(stored["state"])) if stored is not None else {}  # type: ignore[arg-type]
        encodes = int(stored["encodes"]) if stored is not None else 0  # type: ignore[arg-type]
        payload = codec.encode(update, rng=torch_generator(self.seed, "codec", round_, ue), state=state)
        context.state[slot] = ConfigRecord({"state": state_to_bytes(state), "encodes": encodes + 1})
        out = RecordDict()
        for name, record in content.items():
            if name == key:
                continue
            if isinstance(record, MetricRecord):
                record = MetricRecord({**dict(record), ENCODES_METRIC: encodes + 1})
            out[name] = record
        out[PAYLOAD_KEY] = ConfigRecord(
            {"payload": payload, "codec": codec.spec, "arrays-key": key, "ue": ue, "round": round_}
        )
        return Message(out, reply_to=msg)


def _error(msg: Message, reason: str) -> Message:
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg)


__all__ = ["CodecMod", "partition_ue"]
