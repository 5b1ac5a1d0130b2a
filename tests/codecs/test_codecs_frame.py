"""The payload frame: a body handed over in pieces gives the bytes of the joined body, and the trailer
is zlib's CRC-32 whichever implementation computes it."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from fedwave.codecs import get_codec
from fedwave.codecs.header import CodecId, TensorMeta, Writer, frame, unframe
from fedwave.errors import PayloadError


def test_a_body_in_pieces_frames_like_the_joined_body() -> None:
    arr = np.arange(50, dtype="<f4")
    w = Writer()
    w.u8(7)
    w.raw(arr)  # a NumPy array's memory, copied once by the frame's join
    w.varint(300)
    w.raw(b"tail")
    metas = [TensorMeta((5, 10), torch.float32)]
    pieces = frame(CodecId.FP32, b"", metas, w.parts)
    joined = frame(CodecId.FP32, b"", metas, b"".join(w.parts))
    assert pieces == joined
    for body in (bytearray(b"".join(w.parts)), memoryview(b"".join(w.parts))):  # any bytes-like body, whole
        assert frame(CodecId.FP32, b"", metas, body) == joined
    assert b"".join(w.parts) == b"\x07" + arr.tobytes() + b"\xac\x02" + b"tail"
    assert int.from_bytes(pieces[-4:], "little") == zlib.crc32(pieces[:-4])
    _, reader = unframe(pieces, CodecId.FP32, b"", "fp32")
    assert reader.remaining == len(b"".join(w.parts))


def test_writer_refuses_a_strided_array() -> None:
    with pytest.raises(ValueError, match="C-contiguous"):
        Writer().raw(np.arange(10, dtype="<f4")[::2])


def test_fp32_payload_checksum_is_zlibs_and_a_flipped_byte_is_caught() -> None:
    codec = get_codec("fp32")
    update = [torch.randn(40, 3), torch.randn(3)]
    payload = codec.encode(update, rng=torch.Generator().manual_seed(0))
    assert int.from_bytes(payload[-4:], "little") == zlib.crc32(payload[:-4])
    out = codec.decode(payload)
    assert all(torch.equal(a, b) for a, b in zip(out, update))
    bad = bytearray(payload)
    bad[len(bad) // 2] ^= 0x10
    with pytest.raises(PayloadError, match="checksum"):
        codec.decode(bytes(bad))
