"""``topk:r``: keep the ``k = ceil(r d)`` largest-magnitude entries of each tensor (biased).

Body, per tensor (nothing for an empty one): the ``k`` kept values (float32, in increasing index
order), an index-mode byte, then the indices as

- mode 0, bitmap: ``ceil(d / 8)`` bytes, bit ``i`` set when entry ``i`` is kept;
- mode 1, dense: nothing (``k == d``);
- mode ``2 + j``, delta-coded: the gaps between consecutive indices (the first from -1) Rice-coded
  with parameter ``j`` (``(g-1) >> j`` in unary, then the low ``j`` bits), as a varint byte length
  followed by the stream.

The encoder computes the exact size of both index encodings (bitmap and every Rice parameter) and
writes the smallest. Size: ``8 + 32 k + min(d, about k (log2(d/k) + 2))`` bits (rounded to bytes).

Error: ``||C(x) - x||^2`` is the energy of the ``d - k`` smallest entries, at most the fraction
``1 - k/d`` of ``||x||^2`` (the kept entries are the largest, so they hold at least ``k/d`` of it): a
contraction with ``delta >= k/d``, which ``ef(topk:r)`` uses as it is (Stich et al., 2018).
"""

from __future__ import annotations

import struct

import torch

from fedwave.codecs.base import CodecState, FramedCodec, expect_args, kept_count, parse_fraction
from fedwave.codecs.bits import (
    pack_bits,
    packed_size,
    read_split_code,
    unpack_codes,
    unpack_stream,
    write_split_code,
)
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer, varint
from fedwave.errors import PayloadError

BITMAP, DENSE, RICE = 0, 1, 2
MAX_RICE = 40


def encode_indices(w: Writer, idx: torch.Tensor, d: int) -> None:
    """Write the mode byte and the sorted indices ``idx`` of a length-``d`` tensor, whichever is smaller."""
    k = idx.numel()
    if k == d:
        w.u8(DENSE)
        return
    gaps = torch.diff(idx, prepend=torch.tensor([-1])) - 1  # >= 0
    best_j, best_bits = 0, None
    for j in range(min(MAX_RICE, d.bit_length()) + 1):
        nbits = int((gaps >> j).sum()) + k * (j + 1)
        if best_bits is None or nbits < best_bits:
            best_j, best_bits = j, nbits
    assert best_bits is not None
    rice_bytes = packed_size(best_bits, 1)
    if 1 + len(varint(rice_bytes)) + rice_bytes < 1 + packed_size(d, 1):
        w.u8(RICE + best_j)
        stream = pack_bits(write_split_code(gaps >> best_j, gaps & ((1 << best_j) - 1), best_j))
        w.varint(len(stream))
        w.raw(stream)
    else:
        w.u8(BITMAP)
        mask = torch.zeros(d, dtype=torch.uint8)
        mask[idx] = 1
        w.raw(pack_bits(mask))


def decode_indices(r: Reader, mode: int, k: int, d: int) -> torch.Tensor:
    """Read ``k`` sorted indices below ``d`` written by :func:`encode_indices` with ``mode``."""
    if mode == DENSE:
        if k != d:
            raise PayloadError("dense index mode with fewer values than entries")
        return torch.arange(d)
    if mode == BITMAP:
        nbytes = packed_size(d, 1)
        r.require(nbytes, "index bitmap")
        mask = unpack_codes(r.u8_tensor(nbytes, "index bitmap"), d, 1)
        idx = torch.nonzero(mask).view(-1)
        if idx.numel() != k:
            raise PayloadError(f"index bitmap marks {idx.numel()} entries, {k} expected")
        return idx
    j = mode - RICE
    if j > min(MAX_RICE, d.bit_length()):
        raise PayloadError(f"unknown index mode {mode}")
    length = r.varint("index stream length", limit=r.remaining)
    bits = unpack_stream(r.u8_tensor(length, "index stream"))
    quotient, low, used = read_split_code(bits, k, j, 8 * length)
    if bits.numel() - used >= 8 or bool(bits[used:].any()):
        raise PayloadError("index stream length does not match its contents")
    if int(quotient.max()) > (d >> j):
        raise PayloadError("index gap beyond the tensor")
    idx = torch.cumsum((quotient << j) + low + 1, dim=0) - 1
    if int(idx[-1]) >= d:
        raise PayloadError(f"index {int(idx[-1])} beyond a tensor of {d} entries")
    return idx


class TopK(FramedCodec):
    """Keep the fraction ``r`` of largest-magnitude entries of each tensor, values in float32."""

    codec_id = CodecId.TOPK
    family = "topk"
    params_help = "r = fraction kept, in (0, 1]"
    description = "top-k sparsification: float32 values + bitmap or Rice-coded indices (~r(32+idx) bits)"
    contractive = True
    under_ef = "as is (delta >= k/d)"

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.spec = f"topk:{fraction!r}"

    @classmethod
    def from_args(cls, args: list[str]) -> TopK:
        expect_args(cls.family, args, 1, 1, "the fraction kept, e.g. topk:0.01")
        return cls(parse_fraction(args[0], "topk: fraction r"))

    def _params(self) -> bytes:
        return struct.pack("<d", self.fraction)

    def _encode_body(
        self,
        w: Writer,
        flats: list[torch.Tensor],
        metas: list[TensorMeta],
        rng: torch.Generator,
        state: CodecState | None,
    ) -> None:
        for x in flats:
            d = x.numel()
            if d == 0:
                continue
            k = kept_count(self.fraction, d)
            idx = torch.arange(d) if k == d else torch.topk(x.abs(), k, sorted=False).indices.sort().values
            w.f32(x[idx])
            encode_indices(w, idx, d)

    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        out = []
        for meta in metas:
            d = meta.numel
            if d == 0:
                out.append(torch.zeros(0))
                continue
            k = kept_count(self.fraction, d)
            r.require(4 * k + 1, f"{k} kept values")
            values = r.f32(k, "kept values")
            mode = r.u8("index mode")
            idx = decode_indices(r, mode, k, d)
            dense = torch.zeros(d)
            dense[idx] = values
            out.append(dense)
        return out
