"""``qsgd:s`` and ``qsgd:s:elias``: QSGD (Alistarh et al., 2017), unbiased.

Per tensor, with ``n = ||x||_2``: coordinate ``x_i`` becomes ``n * sign(x_i) * l_i / s`` where the
level ``l_i`` in ``0..s`` is ``|x_i| s / n`` rounded down or up at random (unbiased). Then
``E||Q(x) - x||^2 <= min(d / s^2, sqrt(d) / s) ||x||^2``.

Body, per tensor: ``n`` (float32), then either

- fixed width: the signed level ``sign * l + s`` is one of ``K = 2s + 1`` symbols; the symbols are
  packed as base-``K`` digits, ``g`` to a word of ``w`` bits (:func:`~fedwave.codecs.bits.pack_digits`):
  ``32 + 8 * digits_size(d, K)`` bits, about ``log2(2s + 1)`` bits per coordinate (at most 2.4% more).
  That is ``log2(s) + 1`` bits plus ``log2(1 + 1/(2s))``: 1.586 bits for ``s = 1`` (three symbols),
  4.09 for ``s = 8``, 5.09 for ``s = 16``, 9.0 for ``s = 255``. A fixed-width code cannot go below
  ``log2(2s + 1)``; ``elias`` codes small levels in fewer bits; or
- ``elias``: the byte length ``L`` of a bit stream (varint), then the stream: Elias-gamma codes of
  ``l_i + 1`` (``2 floor(log2(l_i + 1)) + 1`` bits each; their unary parts first, then their binary
  suffixes), then one sign bit per non-zero level. Small levels, the common case when ``s`` is below
  ``sqrt(d)``, cost about 1 bit.

Arithmetic: a tensor of very large or very small values is scaled by a power of two so its largest
magnitude is in [0.5, 1) before its norm and levels are computed, and the decoder applies the norm's
exponent last (:mod:`fedwave.codecs.pow2`): large finite inputs (``1e20``, whose squares overflow
float32) and denormal ones decode to finite values within the error bound, as long as ``n`` itself is
below float32's maximum (3.4e38).

Variance: with ``p_i`` the fractional part of ``|x_i| s / n``, ``E||Q(x) - x||^2 = (n/s)^2 sum p_i
(1 - p_i) = omega ||x||^2``, ``omega = sum p_i (1 - p_i) / s^2``. Under ``ef(...)`` the encoder sends
``n / (1 + omega)`` with ``omega`` of this very tensor (float64), a contraction with ``delta = 1 / (1 +
omega)`` (see :meth:`~fedwave.codecs.base.FramedCodec.contraction`).
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import CodecState, FramedCodec, expect_args, parse_int
from fedwave.codecs.bits import (
    digits_size,
    pack_bits,
    pack_digits,
    read_split_code,
    unpack_digits,
    unpack_stream,
    write_split_code,
)
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer, varint
from fedwave.codecs.pow2 import ldexp, normalize_rows, split
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
    under_ef = "scaled by 1/(1+omega(x)), omega = sum p(1-p)/s^2"

    def __init__(self, levels: int, elias: bool = False) -> None:
        if not 1 <= levels <= MAX_LEVELS:
            raise ValueError(f"qsgd: levels must be 1..{MAX_LEVELS}, got {levels}")
        self.levels = levels
        self.elias = elias
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
            xs, e = normalize_rows(x.view(1, -1))
            xs = xs.view(-1)
            norm = torch.linalg.vector_norm(xs)  # in [0.5, sqrt(d)] for finite non-zero x
            ok = bool(torch.isfinite(norm)) and float(norm) > 0
            ratio = xs.abs() * (s / float(norm)) if ok else torch.zeros_like(xs)  # |x_i| s / n, at most s
            noise = torch.rand(x.shape, generator=rng)
            level = torch.floor(ratio + noise).clamp_(0, s).to(torch.int64)
            sent = ldexp(norm, e)
            if self.ef_form and ok:
                frac = (ratio - torch.floor(ratio)).double()
                sent = sent / (1.0 + float((frac * (1 - frac)).sum()) / s**2)
            w.f32(sent)
            negative = x < 0
            if not self.elias:
                w.raw(pack_digits(torch.where(negative, -level, level) + s, 2 * s + 1))
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
            mantissa, e = split(norm)  # decode with the scaled norm, apply the exponent last
            if not self.elias:
                nbytes = digits_size(d, 2 * s + 1)
                r.require(nbytes, f"levels of {d} values")
                signed = unpack_digits(r.u8_tensor(nbytes, "levels"), d, 2 * s + 1)
                out.append(ldexp((signed - s).to(torch.float32) * (mantissa / s), e))
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
            out.append(ldexp(value * (mantissa / s), e))
        return out
