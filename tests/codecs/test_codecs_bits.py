"""Bit packing and the payload frame's building blocks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedwave.codecs.bits import (
    pack_codes,
    pack_trits,
    packed_size,
    read_split_code,
    unpack_codes,
    unpack_stream,
    unpack_trits,
    write_split_code,
)
from fedwave.codecs.header import Reader, varint
from fedwave.errors import PayloadError

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def _as_tensor(data: bytes) -> torch.Tensor:
    return torch.tensor(list(data), dtype=torch.uint8)


@SETTINGS
@given(st.integers(1, 24), st.integers(0, 300), st.integers(0, 2**31))
def test_codes_round_trip(width: int, count: int, seed: int) -> None:
    codes = torch.randint(0, 2**width, (count,), generator=torch.Generator().manual_seed(seed))
    packed = pack_codes(codes, width)
    assert len(packed) == packed_size(count, width) == (count * width + 7) // 8
    assert torch.equal(unpack_codes(_as_tensor(packed), count, width), codes)


def test_bit_order_is_little_endian() -> None:
    assert pack_codes(torch.tensor([1, 0, 0, 0, 0, 0, 0, 1, 1]), 1) == bytes([0b10000001, 0b1])
    assert pack_codes(torch.tensor([0x3, 0x1]), 4) == bytes([0x13])
    assert pack_codes(torch.tensor([5, 2]), 3) == bytes([0b010101])


def test_nonzero_padding_is_rejected() -> None:
    with pytest.raises(PayloadError):
        unpack_codes(_as_tensor(bytes([0xFF])), 3, 2)
    with pytest.raises(PayloadError):
        unpack_codes(_as_tensor(bytes([0x01, 0x00])), 1, 1)  # wrong length


@SETTINGS
@given(st.lists(st.integers(0, 2), max_size=100))
def test_trits_round_trip(digits: list[int]) -> None:
    trits = torch.tensor(digits, dtype=torch.int64)
    packed = pack_trits(trits)
    assert len(packed) == (len(digits) + 4) // 5
    assert torch.equal(unpack_trits(_as_tensor(packed), len(digits)), trits)


def test_bad_trits_are_rejected() -> None:
    with pytest.raises(PayloadError):
        unpack_trits(_as_tensor(bytes([243])), 5)
    with pytest.raises(PayloadError):
        unpack_trits(_as_tensor(bytes([81])), 4)  # a non-zero padding digit


@SETTINGS
@given(st.lists(st.integers(1, 70_000), max_size=80))
def test_elias_gamma_round_trip(values: list[int]) -> None:
    v = torch.tensor(values, dtype=torch.int64)
    exp = torch.tensor([x.bit_length() - 1 for x in values], dtype=torch.int64)
    bits = write_split_code(exp, v - (1 << exp), exp)
    assert bits.numel() == sum(2 * (x.bit_length() - 1) + 1 for x in values)
    unary, suffix, used = read_split_code(bits, len(values), None, 17)
    assert used == bits.numel()
    assert torch.equal((1 << unary) + suffix, v)


@SETTINGS
@given(st.lists(st.integers(0, 5000), max_size=80), st.integers(0, 12))
def test_rice_round_trip(values: list[int], k: int) -> None:
    v = torch.tensor(values, dtype=torch.int64)
    bits = write_split_code(v >> k, v & ((1 << k) - 1), k)
    stream = unpack_stream(_as_tensor(pack_codes(bits, 1)))
    q, r, used = read_split_code(stream, len(values), k, 10**6)
    assert used == bits.numel()
    assert torch.equal((q << k) | r, v)


def test_split_code_errors() -> None:
    with pytest.raises(PayloadError):
        read_split_code(torch.zeros(16, dtype=torch.uint8), 2, None, 8)  # no code word at all
    with pytest.raises(PayloadError):
        read_split_code(torch.tensor([0, 0, 0, 1], dtype=torch.uint8), 1, None, 2)  # unary too long
    with pytest.raises(PayloadError):
        read_split_code(torch.tensor([0, 0, 1, 1], dtype=torch.uint8), 1, None, 8)  # suffix cut


@SETTINGS
@given(st.integers(0, 2**63))
def test_varint_round_trip(value: int) -> None:
    data = varint(value)
    assert len(data) == max(1, (value.bit_length() + 6) // 7)
    reader = Reader(data)
    assert reader.varint() == value
    reader.expect_end()


def test_reader_refuses_what_is_not_there() -> None:
    reader = Reader(b"\x05\x80")
    assert reader.u8() == 5
    with pytest.raises(PayloadError):
        reader.varint()  # continuation bit, then nothing
    with pytest.raises(PayloadError):
        Reader(b"\x80\x00").varint()  # non-canonical
    with pytest.raises(PayloadError):
        Reader(b"\x01").varint(limit=0)
    with pytest.raises(PayloadError):
        Reader(b"\x00" * 8).f32(3, "values")
