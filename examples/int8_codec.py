"""A codec written outside fedwave: 8-bit linear quantization with one scale per tensor.

Each tensor is sent as ``round(x / s)`` in int8 with ``s = max|x| / 127`` (float32), so every
coordinate is off by at most ``s / 2``. Deterministic (it draws nothing from ``rng``), biased.

Payload (little endian): ``b"I8"``, tensor count (u16); per tensor its dtype code (u8), number of
dimensions (u8), the dimensions (u32 each) and ``s`` (f32); then every tensor's int8 values in order.
Size: ``4 + sum(6 + 4 ndim) + numel`` bytes, about 1 byte per coordinate (4x smaller than fp32).

Use it by import path with this directory on ``PYTHONPATH``: ``-o codec=int8_codec:Int8Codec``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import torch

from fedwave import Codec, CodecState, PayloadError
from fedwave.codecs import TensorMeta

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
MAGIC = b"I8"


class Int8Codec(Codec):
    """8-bit linear quantization, one float32 scale per tensor (see the module docstring)."""

    def __init__(self) -> None:
        self.spec = "int8_codec:Int8Codec"

    def encode(
        self, tensors: Sequence[torch.Tensor], *, rng: torch.Generator, state: CodecState | None = None
    ) -> bytes:
        head = [MAGIC + struct.pack("<H", len(tensors))]
        body = []
        for t in tensors:
            x = t.detach().reshape(-1).to(torch.float32)
            scale = float(x.abs().max()) / 127 if x.numel() else 0.0
            q = torch.round(x / scale).clamp(-127, 127) if scale > 0 else torch.zeros_like(x)
            head.append(struct.pack(f"<BB{t.dim()}If", DTYPES.index(t.dtype), t.dim(), *t.shape, scale))
            body.append(q.to(torch.int8).numpy().tobytes())
        return b"".join(head + body)

    def decode(self, payload: bytes, *, expected: Sequence[TensorMeta] | None = None) -> list[torch.Tensor]:
        if not isinstance(payload, bytes) or payload[:2] != MAGIC or len(payload) < 4:
            raise PayloadError("not an int8_codec payload")
        (count,) = struct.unpack_from("<H", payload, 2)
        pos, metas = 4, []
        for _ in range(count):
            if pos + 2 > len(payload):
                raise PayloadError("int8_codec payload truncated in a tensor header")
            code, ndim = struct.unpack_from("<BB", payload, pos)
            if code >= len(DTYPES) or pos + 2 + 4 * ndim + 4 > len(payload):
                raise PayloadError("int8_codec payload has a bad or truncated tensor header")
            *shape, scale = struct.unpack_from(f"<{ndim}If", payload, pos + 2)
            if not math.isfinite(scale) or scale < 0:
                raise PayloadError(f"int8_codec payload has an invalid scale {scale}")
            metas.append((TensorMeta(tuple(shape), DTYPES[code]), scale))
            pos += 2 + 4 * ndim + 4
        if expected is not None and [m for m, _ in metas] != list(expected):
            raise PayloadError("int8_codec payload does not hold the expected tensors")
        if len(payload) - pos != sum(m.numel for m, _ in metas):
            raise PayloadError(f"int8_codec payload has {len(payload) - pos} value bytes, not the header's")
        out = []
        for meta, scale in metas:
            raw = payload[pos : pos + meta.numel]
            q = (
                torch.frombuffer(bytearray(raw), dtype=torch.int8)
                if raw
                else torch.zeros(0, dtype=torch.int8)
            )
            out.append((q.to(torch.float32) * scale).reshape(meta.shape).to(meta.dtype))
            pos += meta.numel
        return out
