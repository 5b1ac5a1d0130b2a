"""What travels in a Flower message instead of the model: the keys, and array <-> tensor conversion.

The client mod replaces the reply's ``ArrayRecord`` by a ``ConfigRecord`` under :data:`PAYLOAD_KEY`:

    payload    bytes  the codec's message, exactly what ``codec.encode`` returned (header and checksum in)
    codec      str    the canonical codec spec that encoded it
    arrays-key str    the key the ArrayRecord had (the strategy puts the rebuilt model back under it)
    ue, round  int    the UE id and the 0-based round of the codec's random stream (for the logs)

and adds the metric :data:`ENCODES_METRIC` (encodes this UE has made with this codec so far: it counts up
across rounds only if the node's ``Context.state`` persists). The strategy sends the codec spec to the
clients in the train config under :data:`CODEC_CONFIG`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from fedwave.codecs import CodecState
from fedwave.errors import PayloadError

PAYLOAD_KEY = "fedwave.update"
CODEC_CONFIG = "fedwave-codec"
ENCODES_METRIC = "fedwave-encodes"
ROUND_CONFIG = "server-round"


def to_tensors(record: ArrayRecord) -> list[torch.Tensor]:
    """The record's arrays as CPU tensors, in the record's key order (copies: the record is not aliased)."""
    return [torch.from_numpy(np.array(a.numpy(), copy=True)) for a in record.values()]


def to_record(keys: Sequence[str], tensors: Sequence[torch.Tensor]) -> ArrayRecord:
    """An ArrayRecord of ``tensors`` under ``keys`` (in that order)."""
    if len(keys) != len(tensors):
        raise ValueError(f"{len(keys)} keys for {len(tensors)} tensors")
    return ArrayRecord(
        {k: Array(np.ascontiguousarray(t.detach().cpu().numpy())) for k, t in zip(keys, tensors)}
    )


def float_only(record: ArrayRecord, who: str) -> None:
    """Refuse a record holding a non-floating array (codecs encode float tensors only).

    Raises:
        PayloadError: names the array and says what to send instead.
    """
    for key, arr in record.items():
        if arr.dtype not in ("float32", "float16", "float64", "bfloat16"):
            raise PayloadError(
                f"{who}: array {key!r} has dtype {arr.dtype}; fedwave codecs encode floating arrays only: "
                "send the model's parameters (not integer buffers such as num_batches_tracked)"
            )


def state_to_bytes(state: CodecState) -> bytes:
    """A codec state (tensors, ints, floats under flat keys) as bytes for a ``ConfigRecord``."""
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return buf.getvalue()


def state_from_bytes(data: bytes) -> CodecState:
    """The codec state :func:`state_to_bytes` wrote (loaded with ``weights_only``: tensors and numbers)."""
    loaded: Any = torch.load(io.BytesIO(data), weights_only=True)
    if not isinstance(loaded, dict):
        raise PayloadError("the stored codec state is not a dict; clear the node's Context.state")
    return loaded
