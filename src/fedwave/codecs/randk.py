"""``randk:r``: keep ``k = ceil(r d)`` entries of each tensor chosen at random, scaled by ``d / k``.

Every entry is kept with probability ``k / d`` and scaled by ``d / k`` (about ``1 / r``), so the
estimate is unbiased. The indices are not sent: the decoder regenerates them from a 64-bit seed
carried in the payload (one seed; the tensors draw their permutations from it in order).

Body: the seed (8 bytes), then per tensor the ``k`` kept values (float32, unscaled, in the order of
the permutation). Size: ``64 + 32 k`` bits.

Variance: ``E||C(x) - x||^2 = sum x_i^2 ((k/d) (d/k - 1)^2 + (1 - k/d)) = (d/k - 1) ||x||^2``, i.e.
``omega = d/k - 1`` for every input. Under ``ef(...)`` the encoder sends the kept values times
``1 / (1 + omega) = k / d``, so the decoder's ``d / k`` restores them unscaled: plain random-k, a
contraction with ``delta = k / d`` (Stich et al., 2018).
"""

from __future__ import annotations

import struct

import torch

from fedwave.codecs.base import (
    CodecState,
    FramedCodec,
    draw_seed,
    expect_args,
    kept_count,
    parse_fraction,
    seeded,
)
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer


class RandK(FramedCodec):
    """Random-k sparsification with shared-seed indices, unbiased."""

    codec_id = CodecId.RANDK
    family = "randk"
    params_help = "r = fraction kept, in (0, 1]"
    description = "random-k sparsification, values scaled d/k, indices from a seed (~32 r bits/coord.)"
    unbiased = True
    under_ef = "kept values sent unscaled (delta = k/d)"

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.spec = f"randk:{fraction!r}"

    @classmethod
    def from_args(cls, args: list[str]) -> RandK:
        expect_args(cls.family, args, 1, 1, "the fraction kept, e.g. randk:0.01")
        return cls(parse_fraction(args[0], "randk: fraction r"))

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
        seed = draw_seed(rng)
        w.u64(seed)
        shared = seeded(seed)
        for x in flats:
            d = x.numel()
            if d == 0:
                continue
            k = kept_count(self.fraction, d)
            idx = torch.randperm(d, generator=shared)[:k]
            w.f32(x[idx] * (k / d) if self.ef_form else x[idx])

    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        shared = seeded(r.u64("seed"))
        counts = [kept_count(self.fraction, m.numel) for m in metas]
        r.require(4 * sum(counts), "kept values")  # bounds every d by k / r before allocating
        out = []
        for meta, k in zip(metas, counts, strict=True):
            d = meta.numel
            if d == 0:
                out.append(torch.zeros(0))
                continue
            values = r.f32(k, "kept values")
            idx = torch.randperm(d, generator=shared)[:k]
            dense = torch.zeros(d)
            dense[idx] = values * (d / k)
            out.append(dense)
        return out
