"""Casts: ``fp32`` (lossless), ``fp16`` and ``bf16`` (round to nearest).

Body: every tensor's values in order, 4 bytes (``fp32``) or 2 bytes (``fp16``, ``bf16``) each,
little-endian. Size: ``32 d`` or ``16 d`` bits for ``d`` coordinates.

Error: rounding to nearest with a ``p``-bit significand changes a value in the normal range by at most
``2**-p`` of itself (``p = 11`` for fp16, 8 for bf16), so ``||C(x) - x||^2 <= 4**-p ||x||^2``: the NMSE is
at most ``2**-22`` (fp16) or ``2**-16`` (bf16). Below the normal range the error is at most half the
smallest subnormal (``2**-25`` for fp16, ``2**-134`` for bf16) per value. fp16 overflows to ``inf``
above 65504 (a receiver rejects such an update); bf16 has float32's range.

Under ``ef(...)`` the casts are used as they are: they are contractions with ``delta >= 1 - 4**-p`` in
the normal range.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from fedwave.codecs.base import CodecState, ParameterlessCodec
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer


class _CastCodec(ParameterlessCodec):
    """Send every value as ``wire_dtype``."""

    contractive = True

    wire_dtype: ClassVar[torch.dtype]
    np_dtype: ClassVar[str]

    def _encode_body(
        self,
        w: Writer,
        flats: list[torch.Tensor],
        metas: list[TensorMeta],
        rng: torch.Generator,
        state: CodecState | None,
    ) -> None:
        for flat in flats:
            wire = flat if flat.dtype == self.wire_dtype else flat.to(self.wire_dtype)
            if self.wire_dtype == torch.bfloat16:
                wire = wire.view(torch.int16)
            w.raw(wire.numpy().astype(self.np_dtype, copy=False))  # copied once, by the frame's join

    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        # The values of all tensors follow each other: one read and one conversion for the whole body,
        # then one (non-overlapping) view per tensor.
        counts = [meta.numel for meta in metas]
        arr = r.array(sum(counts), self.np_dtype, "values")
        t = torch.from_numpy(arr.astype(np.dtype(self.np_dtype).newbyteorder("="), copy=False))
        if self.wire_dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        return list(torch.split(t.to(torch.float32), counts))


class FP32(_CastCodec):
    """Raw float32: 32 bits per coordinate, lossless."""

    codec_id = CodecId.FP32
    family = "fp32"
    description = "raw float32 (32 bits/coordinate, lossless)"
    wire_dtype = torch.float32
    np_dtype = "<f4"
    unbiased = True
    exact = True
    under_ef = "as is (exact: residual 0)"


class FP16(_CastCodec):
    """IEEE half precision: 16 bits per coordinate, round to nearest (overflow to inf above 65504)."""

    codec_id = CodecId.FP16
    family = "fp16"
    description = "cast to IEEE float16 (16 bits/coordinate, round to nearest)"
    wire_dtype = torch.float16
    np_dtype = "<f2"
    under_ef = "as is (rounding: delta >= 1 - 2^-22)"


class BF16(_CastCodec):
    """bfloat16: 16 bits per coordinate, float32's range with 8 significant bits."""

    codec_id = CodecId.BF16
    family = "bf16"
    description = "cast to bfloat16 (16 bits/coordinate, round to nearest)"
    wire_dtype = torch.bfloat16
    np_dtype = "<i2"
    under_ef = "as is (rounding: delta >= 1 - 2^-16)"
