"""``eden:b``: EDEN (Vargaftik et al., 2022), b-bit Lloyd-Max quantization after a random rotation.

The rotated, normalized coordinates are about standard normal; each goes to the nearest centroid of the
``b``-bit Lloyd-Max quantizer of N(0, 1), and the block is rescaled by ``||x||^2 / <y, c[idx]>``, which
makes the estimate unbiased over the rotation. For large blocks the normalized MSE is ``D_b / (1 - D_b)``
with ``D_b`` the quantizer's MSE: about 0.571, 0.133, 0.0358 and 0.00959 for b = 1, 2, 3, 4.
The rotation is two randomized Hadamard rotations; payload layout, size, the bias and what
``ef(eden:b)`` sends: see :mod:`fedwave.codecs.rotation` (about ``b`` bits per coordinate).
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import expect_args, parse_int
from fedwave.codecs.header import CodecId
from fedwave.codecs.lloydmax import lloyd_max_normal
from fedwave.codecs.rotation import RotationCodec


class EDEN(RotationCodec):
    """Randomized Hadamard rotation, ``b``-bit Lloyd-Max quantization, unbiased scale per block."""

    codec_id = CodecId.EDEN
    family = "eden"
    params_help = "b = bits 1..8"
    description = "EDEN: random Hadamard rotation + b-bit Lloyd-Max quantization, unbiased (b bits/coord.)"

    def __init__(self, bits: int) -> None:
        if not 1 <= bits <= 8:
            raise ValueError(f"eden: bits must be 1..8, got {bits}")
        self.bits = bits
        self.spec = f"eden:{bits}"

    @classmethod
    def from_args(cls, args: list[str]) -> EDEN:
        expect_args(cls.family, args, 1, 1, "bits 1..8, e.g. eden:2")
        return cls(parse_int(args[0], "eden: bits", 1, 8))

    def _params(self) -> bytes:
        return bytes((self.bits,))

    def centroids(self) -> tuple[torch.Tensor, torch.Tensor]:
        centroids, bounds, _ = lloyd_max_normal(self.bits)
        return centroids.to(torch.float32), bounds.to(torch.float32)
