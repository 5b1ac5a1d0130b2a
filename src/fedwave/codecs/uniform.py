"""``uniform:b[:block]``: min/max uniform quantization with stochastic rounding (unbiased).

Each tensor is cut into blocks of ``block`` values (default: the whole tensor is one block). In a
block with minimum ``lo`` and maximum ``hi`` the ``2**b`` levels are ``lo + j * delta`` with
``delta = (hi - lo) / (2**b - 1)``; a value between two levels goes to the upper one with probability
equal to its distance from the lower one over ``delta``, so the decoded value is unbiased.

Body, per tensor: ``lo`` of every block (float32), ``hi`` of every block (float32), then the ``d``
level indices packed ``b`` bits each. Size: ``64 * ceil(d / block) + 8 * ceil(b d / 8)`` bits.

Arithmetic: a block of very large or very small values is scaled by a power of two so its largest
magnitude is in [0.5, 1) before the levels are computed, and the decoder scales back last
(:mod:`fedwave.codecs.pow2`), so a block of large finite values (``hi - lo`` above float32's range) or
of denormals decodes to finite values within its range.

Variance: a value at fraction ``p`` of the way between two levels has variance ``delta^2 p (1 - p)``, so
``E||C(x) - x||^2 = sum delta^2 p_i (1 - p_i) = omega ||x||^2`` with ``omega <= B / (2 (2**b - 1)^2)``
for blocks of ``B`` values (``delta <= (hi - lo) / (2**b - 1)`` and ``(hi - lo)^2 <= 2 ||x_block||^2``).
Under ``ef(...)`` the encoder sends ``lo / (1 + omega)`` and ``hi / (1 + omega)`` with ``omega`` of this
very tensor (float64), a contraction with ``delta = 1 / (1 + omega)`` (see
:meth:`~fedwave.codecs.base.FramedCodec.contraction`).
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import CodecState, FramedCodec, expect_args, parse_int
from fedwave.codecs.bits import pack_codes, packed_size, unpack_codes
from fedwave.codecs.header import MAX_ELEMENTS, CodecId, Reader, TensorMeta, Writer, varint
from fedwave.codecs.pow2 import exponent, ldexp, normalize_rows, sum_squares


def _blocks(numel: int, block: int) -> tuple[int, int]:
    """(block length, number of blocks) of a tensor of ``numel`` values."""
    size = min(block, numel) if block else numel
    size = max(size, 1)
    return size, -(-numel // size)


class Uniform(FramedCodec):
    """``b``-bit min/max quantization with stochastic rounding, per tensor or per block."""

    codec_id = CodecId.UNIFORM
    family = "uniform"
    params_help = "b = bits 1..8; block = values per min/max pair (default: whole tensor)"
    description = "min/max uniform quantization, 2^b levels, stochastic rounding (b bits/coordinate)"
    unbiased = True
    under_ef = "scaled by 1/(1+omega(x)), omega = sum step^2 p(1-p)/||x||^2"

    def __init__(self, bits: int, block: int = 0) -> None:
        if not 1 <= bits <= 8:
            raise ValueError(f"uniform: bits must be 1..8, got {bits}")
        self.bits = bits
        self.block = block
        self.spec = f"uniform:{bits}" + (f":{block}" if block else "")

    @classmethod
    def from_args(cls, args: list[str]) -> Uniform:
        expect_args(cls.family, args, 1, 2, "bits 1..8 and an optional block size, e.g. uniform:4")
        bits = parse_int(args[0], "uniform: bits", 1, 8)
        block = parse_int(args[1], "uniform: block size", 1, MAX_ELEMENTS) if len(args) > 1 else 0
        return cls(bits, block)

    def _params(self) -> bytes:
        return bytes((self.bits,)) + varint(self.block)

    def _encode_body(
        self,
        w: Writer,
        flats: list[torch.Tensor],
        metas: list[TensorMeta],
        rng: torch.Generator,
        state: CodecState | None,
    ) -> None:
        top = (1 << self.bits) - 1
        for x in flats:
            d = x.numel()
            if d == 0:
                continue
            size, nblocks = _blocks(d, self.block)
            pad = nblocks * size - d
            xb = torch.cat([x, x[-1:].expand(pad)]) if pad else x
            xs, e = normalize_rows(xb.view(nblocks, size))  # blocks of extreme values into [0.5, 1)
            lo = xs.amin(dim=1)
            hi = xs.amax(dim=1)
            delta = (hi - lo) / top
            inv = torch.where(delta > 0, 1.0 / delta, torch.zeros_like(delta))
            scaled = (xs - lo.unsqueeze(1)) * inv.unsqueeze(1)
            noise = torch.rand(scaled.shape, generator=rng)
            codes = torch.floor(scaled + noise).clamp_(0, top).to(torch.uint8).view(-1)[:d]
            lo, hi = ldexp(lo, e), ldexp(hi, e)  # the block's true minimum and maximum (exact)
            if self.ef_form:
                shrink = 1.0 / (1.0 + _omega(scaled.view(-1)[:d], delta, e, size, x))
                lo, hi = lo * shrink, hi * shrink
            w.f32(lo)
            w.f32(hi)
            w.raw(pack_codes(codes, self.bits))

    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        top = (1 << self.bits) - 1
        out = []
        for meta in metas:
            d = meta.numel
            if d == 0:
                out.append(torch.zeros(0))
                continue
            size, nblocks = _blocks(d, self.block)
            r.require(8 * nblocks + packed_size(d, self.bits), f"a tensor of {d} values")
            lo = r.f32(nblocks, "block minima")
            hi = r.f32(nblocks, "block maxima")
            codes = unpack_codes(r.u8_tensor(packed_size(d, self.bits), "codes"), d, self.bits)
            e = exponent(torch.maximum(lo.abs(), hi.abs()))
            lo, hi = ldexp(lo, -e), ldexp(hi, -e)  # hi - lo cannot overflow, delta is not denormal
            delta = (hi - lo) / top
            pad = nblocks * size - d
            padded = torch.cat([codes, codes.new_zeros(pad)]) if pad else codes
            xb = lo.unsqueeze(1) + padded.view(nblocks, size).to(torch.float32) * delta.unsqueeze(1)
            out.append(ldexp(xb, e.unsqueeze(1)).view(-1)[:d])
        return out


def _omega(scaled: torch.Tensor, delta: torch.Tensor, e: torch.Tensor, size: int, x: torch.Tensor) -> float:
    """``E||C(x) - x||^2 / ||x||^2`` of stochastic rounding: ``sum delta_i^2 p_i (1 - p_i) / ||x||^2``.

    ``scaled`` holds the positions in units of the (scaled) level spacing ``delta`` of each block, whose
    true spacing is ``delta * 2**e``; sums in float64.
    """
    energy = sum_squares(x)
    if not energy > 0:
        return 0.0
    frac = (scaled - torch.floor(scaled)).double()
    spread = torch.zeros(delta.numel(), dtype=torch.float64)
    spread.index_add_(0, torch.arange(scaled.numel()) // size, frac * (1 - frac))
    step = delta.double() * torch.pow(2.0, e.double())
    return float((step.square() * spread).sum()) / energy
