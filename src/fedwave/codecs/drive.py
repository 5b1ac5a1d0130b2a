"""``drive``: DRIVE (Vargaftik et al., 2021), one bit per coordinate after a random rotation.

The sign of each rotated coordinate is sent, and the block is rescaled by ``||x||^2 / ||y||_1`` (the
unbiased scale). For large blocks the normalized MSE is ``pi/2 - 1`` (about 0.571). The rotation is two
randomized Hadamard rotations; payload layout, size, the bias and what ``ef(drive)`` sends: see
:mod:`fedwave.codecs.rotation` (about 1 bit per coordinate).
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import expect_args
from fedwave.codecs.header import CodecId
from fedwave.codecs.rotation import RotationCodec

_CENTROIDS = torch.tensor([-1.0, 1.0])
_BOUNDS = torch.tensor([0.0])


class DRIVE(RotationCodec):
    """Randomized Hadamard rotation, sign, unbiased scale per block."""

    codec_id = CodecId.DRIVE
    family = "drive"
    description = "DRIVE: random Hadamard rotation + sign, unbiased scale (1 bit/coordinate)"

    def __init__(self) -> None:
        self.bits = 1
        self.spec = "drive"

    @classmethod
    def from_args(cls, args: list[str]) -> DRIVE:
        expect_args(cls.family, args, 0, 0, "no arguments")
        return cls()

    def centroids(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _CENTROIDS, _BOUNDS
