"""``sign``: scaled sign, ``(||x||_1 / d) * sign(x)`` per tensor (as in EF-signSGD), biased.

Body, per tensor: the scale ``||x||_1 / d`` (float32, summed in float64 so large values cannot
overflow), then one bit per coordinate (1 = negative; zero counts as positive). Size:
``32 + 8 * ceil(d / 8)`` bits.

Error: with ``a = ||x||_1 / d``, ``||a sign(x) - x||^2 = d a^2 - 2 a ||x||_1 + ||x||^2 = ||x||^2 -
||x||_1^2 / d``, exactly. The scale is the one that minimizes this error, and since ``||x||_1 >= ||x||``
the codec is a contraction with ``delta = ||x||_1^2 / (d ||x||^2) >= 1/d`` (Karimireddy et al., 2019);
``ef(sign)`` uses it as it is.
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import CodecState, ParameterlessCodec
from fedwave.codecs.bits import pack_bits, packed_size, unpack_codes
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer


class Sign(ParameterlessCodec):
    """One bit per coordinate and the mean magnitude of the tensor."""

    codec_id = CodecId.SIGN
    family = "sign"
    description = "scaled sign: (||x||_1/d) * sign(x) per tensor (1 bit/coordinate)"
    contractive = True
    under_ef = "as is (delta = ||x||_1^2/(d||x||^2) >= 1/d)"

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
            w.f32(x.abs().sum(dtype=torch.float64) / x.numel())
            w.raw(pack_bits(x < 0))

    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        out = []
        for meta in metas:
            d = meta.numel
            if d == 0:
                out.append(torch.zeros(0))
                continue
            scale = r.f32(1, "scale")
            r.require(packed_size(d, 1), f"signs of {d} values")
            negative = unpack_codes(r.u8_tensor(packed_size(d, 1), "signs"), d, 1)
            out.append((1.0 - 2.0 * negative.to(torch.float32)) * scale)
        return out
