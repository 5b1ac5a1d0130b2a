"""Decoding against the expected layout (the BS's case) takes the header as one byte comparison: it must
give what the field-by-field parse gives, and refuse everything that parse refuses."""

from __future__ import annotations

import zlib

import pytest
import torch

from fedwave.codecs import get_codec
from fedwave.codecs.header import VERSION, TensorMeta, metas_of
from fedwave.errors import PayloadError


def _update() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [
        torch.randn(32, 3, 3, 3, generator=g),
        torch.randn(300, generator=g),
        torch.randn(10, 130, generator=g),
    ]


def _reseal(payload: bytes, at: int, byte: int) -> bytes:
    body = bytearray(payload[:-4])
    body[at] = byte
    return bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "little")


def test_expected_layout_decodes_to_the_same_values(spec: str) -> None:
    codec = get_codec(spec)
    update = _update()
    payload = codec.encode(update, rng=torch.Generator().manual_seed(1), state={})
    free = codec.decode(payload)
    bound = codec.decode(payload, expected=metas_of(update))
    assert [t.shape for t in bound] == [t.shape for t in update]
    assert all(torch.equal(a, b) for a, b in zip(free, bound, strict=True))
    if spec == "fp32":
        assert all(torch.equal(a, b) for a, b in zip(bound, update, strict=True))


def test_fp32_decoded_tensors_are_separate() -> None:
    """The tensors are views of one decoded buffer: writing one leaves the others as they were."""
    update = _update()
    codec = get_codec("fp32")
    out = codec.decode(codec.encode(update, rng=torch.Generator()), expected=metas_of(update))
    out[0].fill_(7.0)
    assert torch.equal(out[1], update[1]) and torch.equal(out[2], update[2])


def test_header_fields_are_still_checked_with_the_expected_layout() -> None:
    update = _update()
    expected = metas_of(update)
    fp32 = get_codec("fp32")
    payload = fp32.encode(update, rng=torch.Generator())
    with pytest.raises(PayloadError, match="encoded by codec 'fp16'"):
        fp32.decode(get_codec("fp16").encode(update, rng=torch.Generator()), expected=expected)
    with pytest.raises(PayloadError, match="other parameters"):
        get_codec("uniform:4").decode(
            get_codec("uniform:8").encode(update, rng=torch.Generator()), expected=expected
        )
    with pytest.raises(PayloadError, match="version"):
        fp32.decode(_reseal(payload, 1, VERSION + 1), expected=expected)
    with pytest.raises(PayloadError, match="magic"):
        fp32.decode(_reseal(payload, 0, 0x00), expected=expected)
    # the first dimension of tensor 0 (32) claimed as 33: refused as a shape mismatch
    start = 3 + 1  # magic, version, codec id; then the tensor count (1 byte)
    assert payload[start + 1] == 32
    with pytest.raises(PayloadError, match="shape"):
        fp32.decode(_reseal(payload, start + 1, 33), expected=expected)
    # a float16 tensor claimed where float32 is expected
    with pytest.raises(PayloadError, match="expected"):
        fp32.decode(_reseal(payload, start, (1 << 5) | 4), expected=expected)


def test_an_expected_layout_no_payload_may_carry_is_refused_by_the_parse() -> None:
    update = _update()
    payload = get_codec("fp32").encode(update, rng=torch.Generator())
    wrong = [
        TensorMeta((32, 3, 3, 3), torch.float32),
        TensorMeta((300,), torch.float32),
        TensorMeta((10, 130), torch.int64),
    ]
    with pytest.raises(PayloadError, match="expected"):
        get_codec("fp32").decode(payload, expected=wrong)
