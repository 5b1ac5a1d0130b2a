"""``terngrad``: TernGrad (Wen et al., 2017), unbiased ternary quantization.

Per tensor, with ``m = max |x_i|``: ``x_i`` becomes ``m * sign(x_i) * B_i`` with
``B_i ~ Bernoulli(|x_i| / m)``, so ``E = x_i``. The ternary digits are packed five to a byte
(``3**5 = 243 <= 256``), i.e. 1.6 bits per coordinate rather than 2.

Body, per tensor: ``m`` (float32), then ``ceil(d / 5)`` bytes of base-3 digits (0 = zero, 1 = +m,
2 = -m). Size: ``32 + 8 * ceil(d / 5)`` bits.

Variance: a coordinate is ``m sign(x_i)`` with probability ``|x_i| / m``, so ``E[C_i^2] = m |x_i|`` and
``E||C(x) - x||^2 = m ||x||_1 - ||x||^2 = omega ||x||^2`` with ``omega = m ||x||_1 / ||x||^2 - 1 <=
sqrt(d) - 1``. Under ``ef(...)`` the encoder sends ``m / (1 + omega) = ||x||^2 / ||x||_1`` instead of
``m`` (``omega`` of this very tensor, summed in float64), a contraction with ``delta = 1 / (1 + omega)``
(see :meth:`~fedwave.codecs.base.FramedCodec.contraction`).
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import CodecState, ParameterlessCodec
from fedwave.codecs.bits import pack_trits, unpack_trits
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer
from fedwave.codecs.pow2 import sum_squares


class TernGrad(ParameterlessCodec):
    """Scale by the largest magnitude, keep each sign with probability ``|x_i| / max|x|``."""

    codec_id = CodecId.TERNGRAD
    family = "terngrad"
    description = "TernGrad: max|x| * sign * Bernoulli(|x|/max|x|), ternary packed 5/byte (1.6 bits/coord.)"
    unbiased = True
    under_ef = "scaled by 1/(1+omega(x)), omega = m||x||_1/||x||^2 - 1"

    def _encode_body(
        self,
        w: Writer,
        flats: list[torch.Tensor],
        metas: list[TensorMeta],
        rng: torch.Generator,
        state: CodecState | None,
    ) -> None:
        for x in flats:
            if x.numel() == 0:
                continue
            mag = x.abs()
            m = mag.max()
            scale = float(m)
            if self.ef_form and scale > 0:  # m / (1 + omega) = ||x||^2 / ||x||_1
                scale = sum_squares(mag) / float(mag.sum(dtype=torch.float64))
            w.f32(torch.tensor(scale))
            prob = mag / m if scale > 0 else torch.zeros_like(mag)  # a division: no overflow for tiny m
            keep = torch.rand(x.shape, generator=rng) < prob
            trits = torch.where(x < 0, 2, 1) * keep
            w.raw(pack_trits(trits))

    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        out = []
        for meta in metas:
            d = meta.numel
            if d == 0:
                out.append(torch.zeros(0))
                continue
            m = r.f32(1, "scale")
            r.require((d + 4) // 5, f"digits of {d} values")
            trits = unpack_trits(r.u8_tensor((d + 4) // 5, "ternary digits"), d)
            sign = torch.tensor([0.0, 1.0, -1.0])[trits]
            out.append(sign * m)
        return out
