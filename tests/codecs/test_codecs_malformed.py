"""Malformed payloads: decode raises PayloadError (and nothing else), quickly, without huge allocations.

Most mutations are caught by the CRC-32 trailer. To reach the parsers behind it, every fuzz case is
also tried with the checksum recomputed after the mutation ("re-sealed").
"""

from __future__ import annotations

import time
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedwave.codecs import get_codec
from fedwave.codecs.base import Codec, FramedCodec
from fedwave.codecs.header import MAX_ELEMENTS, varint
from fedwave.errors import PayloadError

FUZZ = settings(
    max_examples=40,
    deadline=1000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


def _seal(data: bytes) -> bytes:
    """``data`` with a CRC-32 trailer, as the frame writes it."""
    return data + zlib.crc32(data).to_bytes(4, "little")


def _payload(codec: Codec) -> bytes:
    g = torch.Generator().manual_seed(5)
    update = [torch.randn(6, 9, generator=g), torch.randn(13, generator=g), torch.zeros(0)]
    return codec.encode(update, rng=torch.Generator().manual_seed(6), state={})


def _decode_or_payload_error(codec: Codec, data: bytes) -> list[torch.Tensor] | None:
    """Decode; a PayloadError is fine (returns None), any other exception fails the test."""
    start = time.perf_counter()
    try:
        return codec.decode(data)
    except PayloadError as exc:
        assert str(exc)
        return None
    finally:
        assert time.perf_counter() - start < 0.5, "decode of a malformed payload took too long"


def test_random_bytes(spec: str) -> None:
    codec = get_codec(spec)

    @FUZZ
    @given(st.binary(max_size=300))
    def check(data: bytes) -> None:
        with pytest.raises(PayloadError):
            codec.decode(data)
        _decode_or_payload_error(codec, _seal(data))  # a valid checksum on random bytes

    check()


def test_every_truncation(spec: str) -> None:
    codec = get_codec(spec)
    payload = _payload(codec)
    for cut in range(len(payload)):
        with pytest.raises(PayloadError):
            codec.decode(payload[:cut])
        if cut < len(payload) - 4:
            with pytest.raises(PayloadError):  # a truncated body behind a valid checksum
                codec.decode(_seal(payload[:cut]))


def test_extra_bytes(spec: str) -> None:
    codec = get_codec(spec)
    payload = _payload(codec)
    with pytest.raises(PayloadError):
        codec.decode(payload + b"\x00")
    with pytest.raises(PayloadError):
        codec.decode(_seal(payload[:-4] + b"\x00"))


def test_bit_flips(spec: str) -> None:
    codec = get_codec(spec)
    payload = _payload(codec)
    shapes = [t.shape for t in codec.decode(payload)]

    @FUZZ
    @given(st.integers(0, 8 * len(payload) - 1), st.integers(0, 8 * len(payload) - 1))
    def check(bit: int, other: int) -> None:
        flipped = bytearray(payload)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(PayloadError):  # the checksum catches every single-bit error
            codec.decode(bytes(flipped))
        if other // 8 < len(payload) - 4:
            flipped[other // 8] ^= 1 << (other % 8)
        out = _decode_or_payload_error(codec, _seal(bytes(flipped[:-4])))
        if out is not None:
            assert len(out) == len(shapes)

    check()


def test_overwritten_bytes(spec: str) -> None:
    """Random bytes written over a random place of the body, then re-sealed: PayloadError or a decode."""
    codec = get_codec(spec)
    payload = _payload(codec)
    body = payload[:-4]

    @FUZZ
    @given(st.integers(0, len(body) - 1), st.binary(min_size=1, max_size=6))
    def check(at: int, patch: bytes) -> None:
        mutated = (body[:at] + patch + body[at + len(patch) :])[: len(body)]
        _decode_or_payload_error(codec, _seal(mutated))

    check()


def test_wrong_codec_id(spec: str) -> None:
    codec = get_codec(spec)
    payload = bytearray(_payload(codec))
    own = payload[2]
    for codec_id in range(256):
        if codec_id != own:
            payload[2] = codec_id
            with pytest.raises(PayloadError):
                codec.decode(_seal(bytes(payload[:-4])))


def _leaf_spec(codec: Codec) -> str:
    inner = getattr(codec, "inner", None)
    return _leaf_spec(inner) if isinstance(inner, Codec) else codec.spec


def test_payload_of_another_codec(spec: str, all_specs: list[str]) -> None:
    codec = get_codec(spec)
    for other_spec in all_specs:
        other = get_codec(other_spec)
        if _leaf_spec(other) != _leaf_spec(codec):
            with pytest.raises(PayloadError):
                codec.decode(_payload(other))


def _header(codec: Codec) -> bytes:
    """Magic, version, id and parameters of ``codec``'s payloads (everything before the tensor count)."""
    inner = getattr(codec, "inner", None)
    if isinstance(inner, Codec):
        return _header(inner)
    assert isinstance(codec, FramedCodec)
    head = bytes((0xFE, 1, int(codec.codec_id))) + codec._params()
    assert _payload(codec).startswith(head + b"\x03")  # _payload has 3 tensors
    return head


@pytest.mark.parametrize(
    "shapes",
    [
        [(2**27, 2**27)],  # 2**54 elements
        [(MAX_ELEMENTS + 1,)],
        [(2**20,)] * 300,  # many tensors whose total is too large
        [(MAX_ELEMENTS,)],  # allowed count, but no body to back it
        [(2**14, 2**14)],
    ],
)
def test_absurd_shapes_fail_fast(spec: str, shapes: list[tuple[int, ...]]) -> None:
    codec = get_codec(spec)
    head = bytearray(_header(codec)) + varint(len(shapes))
    for shape in shapes:
        head.append(len(shape))  # dtype code 0 (float32)
        for dim in shape:
            head += varint(dim)
    for body in (b"", b"\x00" * 64, b"\xff" * 64):
        _decode_or_payload_error_strict(codec, _seal(bytes(head) + body))


def _decode_or_payload_error_strict(codec: Codec, data: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(PayloadError):
        codec.decode(data)
    assert time.perf_counter() - start < 0.5


def test_huge_tensor_count_fails_fast(spec: str) -> None:
    codec = get_codec(spec)
    _decode_or_payload_error_strict(codec, _seal(_header(codec) + varint(2**62)))
    _decode_or_payload_error_strict(codec, _seal(_header(codec) + b"\xff" * 12))


def test_not_bytes(spec: str) -> None:
    with pytest.raises(PayloadError):
        get_codec(spec).decode("not bytes")  # type: ignore[arg-type]
