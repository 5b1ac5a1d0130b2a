"""Malformed payloads: decode raises PayloadError (and nothing else), quickly, without huge allocations.

Most mutations are caught by the CRC-32 trailer. To reach the parsers behind it, every fuzz case is
also tried with the checksum recomputed after the mutation ("re-sealed").
"""

from __future__ import annotations

import math
import struct
import time
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedwave.codecs import get_codec
from fedwave.codecs.base import Codec, FramedCodec
from fedwave.codecs.header import MAX_ELEMENTS, MAX_NDIM, VERSION, TensorMeta, metas_of, varint
from fedwave.errors import PayloadError

from .conftest import ALL_SPECS

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
    head = bytes((0xFE, VERSION, int(codec.codec_id))) + codec._params()
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


# --- element counts and expected shapes -------------------------------------------------------------


def _crafted(codec: Codec, shapes: list[tuple[int, ...]], body: bytes = b"", dtype_code: int = 0) -> bytes:
    """A sealed payload with ``codec``'s header, the given tensor shapes and ``body``."""
    head = bytearray(_header(codec)) + varint(len(shapes))
    for shape in shapes:
        head.append(dtype_code << 5 | len(shape))
        for dim in shape:
            head += varint(dim)
    return _seal(bytes(head) + body)


@FUZZ
@given(
    st.integers(0, len(ALL_SPECS) - 1),
    st.lists(st.integers(2**20, MAX_ELEMENTS), min_size=2, max_size=6),
    st.integers(0, 6),
    st.binary(max_size=40),
)
def test_zero_size_dimension_with_huge_others(which: int, dims: list[int], at: int, body: bytes) -> None:
    """A tensor with no elements whose other dimensions multiply beyond int64 (torch would raise a
    RuntimeError on its strides, in any order of the dimensions) is a PayloadError."""
    codec = get_codec(ALL_SPECS[which])
    cut = at % (len(dims) + 1)
    shape = (*dims[:cut], 0, *dims[cut:])
    _decode_or_payload_error_strict(codec, _crafted(codec, [shape], body))
    _decode_or_payload_error_strict(codec, _crafted(codec, [(3,), shape], body))


@pytest.mark.parametrize("shape", [(0, 2**28, 2**28, 2**28), (2**28, 2**28, 0), (2**28,) * 5 + (0,)])
def test_zero_size_tensor_spans_are_checked_exactly(spec: str, shape: tuple[int, ...]) -> None:
    _decode_or_payload_error_strict(get_codec(spec), _crafted(get_codec(spec), [shape]))


def test_encode_refuses_what_a_payload_could_not_carry() -> None:
    with pytest.raises(ValueError, match="spans more than"):
        get_codec("fp32").encode([torch.zeros(0, 2**20, 2**20)], rng=torch.Generator())


@pytest.mark.parametrize(
    ("tensors", "error", "message"),
    [
        (torch.zeros(3), TypeError, "wrap a single tensor in a list"),
        ([torch.zeros(3), [1.0]], TypeError, "got list"),
        ([torch.zeros(3, dtype=torch.int64)], TypeError, "got torch.int64"),
        ([torch.zeros([1] * (MAX_NDIM + 1))], ValueError, "dimensions"),
        ([torch.zeros(1).expand(MAX_ELEMENTS // 2 + 1)] * 2, ValueError, "update of more than"),
    ],
    ids=["bare tensor", "not a tensor", "integers", "too many dimensions", "too many elements"],
)
def test_encode_refuses_what_it_cannot_encode(tensors: object, error: type[Exception], message: str) -> None:
    # each time: the layout check remembers the layouts it accepted, not a refusal
    for _ in range(2):
        with pytest.raises(error, match=message):
            get_codec("fp32").encode(tensors, rng=torch.Generator())  # type: ignore[arg-type]


def test_encode_reports_the_first_fault_and_reads_any_iterable_once() -> None:
    codec = get_codec("fp32")
    with pytest.raises(ValueError, match="dimensions"):  # the first tensor's fault, not the second's
        codec.encode([torch.zeros([1] * (MAX_NDIM + 1)), "x"], rng=torch.Generator())  # type: ignore[list-item]
    tensors = [torch.arange(6.0).reshape(2, 3), torch.tensor([-1.5])]
    payload = codec.encode(iter(tensors), rng=torch.Generator())  # type: ignore[arg-type]
    assert payload == codec.encode(tensors, rng=torch.Generator())
    assert all(torch.equal(a, b) for a, b in zip(codec.decode(payload), tensors, strict=True))


def _model_update() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(8)
    return [
        torch.randn(16, 3, 3, 3, generator=g),
        torch.randn(16, generator=g),
        torch.randn(10, 64, generator=g),
    ]


def test_decode_against_the_expected_shapes(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A payload whose tensor list differs from the expected one (count, shape, dtype, in any tensor) is
    refused while the header is read: the codec body is never decoded."""
    codec = get_codec(spec)
    update = _model_update()
    expected = metas_of(update)
    payload = codec.encode(update, rng=torch.Generator().manual_seed(1), state={})
    assert [t.shape for t in codec.decode(payload, expected=expected)] == [t.shape for t in update]
    others = [
        expected[:2],
        [*expected, TensorMeta((1,), torch.float32)],
        [expected[0], TensorMeta((17,), torch.float32), expected[2]],
        [expected[0], expected[1], TensorMeta((64, 10), torch.float32)],
        [expected[0], expected[1], TensorMeta((10, 8, 8), torch.float32)],
        [expected[0], TensorMeta((16,), torch.float16), expected[2]],
    ]
    leaf = codec
    while isinstance(getattr(leaf, "inner", None), Codec):
        leaf = leaf.inner  # type: ignore[attr-defined]

    def body_reached(*args: object) -> list[torch.Tensor]:
        raise AssertionError("the body of a payload that disagrees with the expected shapes was decoded")

    monkeypatch.setattr(type(leaf), "_decode_body", body_reached)
    for other in others:
        with pytest.raises(PayloadError, match="expected"):
            codec.decode(payload, expected=other)


@pytest.mark.parametrize("claimed", [2**26, MAX_ELEMENTS])
def test_randk_payload_claiming_a_huge_tensor(claimed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case: a randk:0.0001 payload of 4k bytes claiming k / 0.0001 elements (2**26: 27 KB;
    decoding it without expectations allocates and fills 2**26 floats). Against the model's shapes it
    is refused in the header, before the body (where every allocation happens) is read."""
    codec = get_codec("randk:0.0001")
    k = math.ceil(0.0001 * claimed)
    crafted = _crafted(codec, [(claimed,)], struct.pack("<Q", 5) + b"\x00" * (4 * k))
    assert len(crafted) < 4 * k + 40

    def body_reached(*args: object) -> list[torch.Tensor]:
        raise AssertionError("the body of a payload that disagrees with the expected shapes was decoded")

    monkeypatch.setattr(type(codec), "_decode_body", body_reached)
    with pytest.raises(PayloadError, match=rf"shape \({claimed},\), expected \(1000,\) float32"):
        codec.decode(crafted, expected=[TensorMeta((1000,), torch.float32)])


@pytest.mark.parametrize("old_spec", ["qsgd:1", "drive", "eden:2", "fp32"])
def test_a_payload_of_the_old_format_version_is_refused_not_misread(old_spec: str) -> None:
    """Version 1 packed qsgd's signs and levels apart and rotated drive/eden once: its bytes would decode
    to other values under version 2, so a version-1 payload (valid checksum) is refused by name."""
    from fedwave.codecs.header import CRC_BYTES

    codec = get_codec(old_spec)
    payload = bytearray(codec.encode([torch.randn(40)], rng=torch.Generator().manual_seed(0), state={}))
    assert VERSION == 2 and payload[1] == VERSION
    payload[1] = 1
    end = len(payload) - CRC_BYTES
    payload[end:] = zlib.crc32(bytes(payload[:end])).to_bytes(4, "little")
    with pytest.raises(PayloadError, match="unsupported payload version 1 \\(this fedwave reads 2\\)"):
        codec.decode(bytes(payload))
