"""``qsgd:s`` and ``qsgd:s:elias``: QSGD (Alistarh et al., 2017), unbiased.

Per tensor, with ``n = ||x||_2``: coordinate ``x_i`` becomes ``n * sign(x_i) * l_i / s`` where the
level ``l_i`` in ``0..s`` is ``|x_i| s / n`` rounded down or up at random (unbiased). Then
``E||Q(x) - x||^2 <= min(d / s^2, sqrt(d) / s) ||x||^2``.

Body, per tensor: ``n`` (float32), then either

- fixed width: the signed level ``sign * l + s`` (``2s + 1`` values) packed in
  ``w = ceil(log2(2s + 1))`` bits: ``32 + 8 * ceil(w d / 8)`` bits; or
- ``elias``: the byte length ``L`` of a bit stream (varint), then the stream: Elias-gamma codes of
  ``l_i + 1`` (``2 floor(log2(l_i + 1)) + 1`` bits each; their unary parts first, then their binary
  suffixes), then one sign bit per non-zero level. Small levels, the common case when ``s`` is below
  ``sqrt(d)``, cost about 1 bit.
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import CodecState, FramedCodec, expect_args, parse_int
from fedwave.codecs.bits import (
    pack_bits,
    pack_codes,
    packed_size,
    read_split_code,
    unpack_codes,
    unpack_stream,
    write_split_code,
)
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer, varint
from fedwave.errors import ConfigError, PayloadError

MAX_LEVELS = 2**16


def _floor_log2(v: torch.Tensor, largest: int) -> torch.Tensor:
    """``floor(log2(v))`` of integers ``1 <= v <= largest`` (one comparison per power of two)."""
    out = torch.zeros(v.shape, dtype=torch.int64)
    for j in range(1, largest.bit_length()):
        out += v >= (1 << j)
    return out


class QSGD(FramedCodec):
    """QSGD with ``s`` levels, fixed-width or Elias-gamma coded."""

    codec_id = CodecId.QSGD
    family = "qsgd"
    params_help = "s = levels 1..65536; ':elias' codes levels with Elias gamma"
    description = "QSGD: norm, sign and stochastic level l/s (log2(2s+1) bits/coord., less with elias)"
    unbiased = True

    def __init__(self, levels: int, elias: bool = False) -> None:
        if not 1 <= levels <= MAX_LEVELS:
            raise ValueError(f"qsgd: levels must be 1..{MAX_LEVELS}, got {levels}")
        self.levels = levels
        self.elias = elias
        self.width = (2 * levels).bit_length()
        self.spec = f"qsgd:{levels}" + (":elias" if elias else "")

    @classmethod
    def from_args(cls, args: list[str]) -> QSGD:
        expect_args(cls.family, args, 1, 2, "a number of levels and optionally 'elias', e.g. qsgd:16")
        levels = parse_int(args[0], "qsgd: levels s", 1, MAX_LEVELS)
        if len(args) == 2 and args[1] != "elias":
            raise ConfigError(f"qsgd: the second argument can only be 'elias', got {args[1]!r}")
        return cls(levels, elias=len(args) == 2)

    def _params(self) -> bytes:
        return varint(self.levels) + bytes((int(self.elias),))

    def _encode_body(
        self,
        w: Writer,
        flats: list[torch.Tensor],
        metas: list[TensorMeta],
        rng: torch.Generator,
        state: CodecState | None,
    ) -> None:
        s = self.levels
        for x in flats:
            if x.numel() == 0:
                continue
            norm = torch.linalg.vector_norm(x)
            w.f32(norm)
            scale = s / float(norm) if float(norm) > 0 else 0.0
            noise = torch.rand(x.shape, generator=rng)
            level = torch.floor(x.abs() * scale + noise).clamp_(0, s).to(torch.int64)
            negative = x < 0
            if not self.elias:
                signed = torch.where(negative, -level, level) + s
                w.raw(pack_codes(signed, self.width))
                continue
            v = level + 1
            n_exp = _floor_log2(v, s + 1)
            bits = write_split_code(n_exp, v - (1 << n_exp), n_exp)
            signs = negative[level > 0]
            stream = pack_bits(torch.cat([bits, signs.to(torch.uint8)]))
            w.varint(len(stream))
            w.raw(stream)

    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        s = self.levels
        out = []
        for meta in metas:
            d = meta.numel
            if d == 0:
                out.append(torch.zeros(0))
                continue
            norm = r.f32(1, "norm")
            if not self.elias:
                nbytes = packed_size(d, self.width)
                r.require(nbytes, f"levels of {d} values")
                signed = unpack_codes(r.u8_tensor(nbytes, "levels"), d, self.width)
                if int(signed.max()) > 2 * s:
                    raise PayloadError(f"qsgd level code above {2 * s}")
                out.append((signed - s).to(torch.float32) * (norm / s))
                continue
            length = r.varint("stream length", limit=r.remaining)
            if d > 8 * length:
                raise PayloadError(f"a stream of {length} bytes cannot hold {d} levels")
            bits = unpack_stream(r.u8_tensor(length, "level stream"))
            n_exp, suffix, used = read_split_code(bits, d, None, (s + 1).bit_length() - 1)
            level = (1 << n_exp) + suffix - 1
            if int(level.max()) > s:
                raise PayloadError(f"qsgd level above {s}")
            nonzero = level > 0
            nnz = int(nonzero.sum())
            if used + nnz > bits.numel() or bits.numel() - (used + nnz) >= 8:
                raise PayloadError("qsgd stream length does not match its contents")
            if bool(bits[used + nnz :].any()):
                raise PayloadError("non-zero padding bits after the qsgd stream")
            value = level.to(torch.float32)
            negative = bits[used : used + nnz].bool()
            value[nonzero] = torch.where(negative, -value[nonzero], value[nonzero])
            out.append(value * (norm / s))
        return out
