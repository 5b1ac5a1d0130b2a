"""The payload frame shared by every codec: header, body, checksum.

Layout of a payload (all multi-byte numbers little-endian)::

    magic (1 byte, 0xFE) | version (1 byte) | codec id (1 byte) | codec parameters (0-8 bytes)
    | number of tensors (varint) | per tensor: dtype<<5 | ndim (1 byte), each dim (varint)
    | codec body (see each codec) | CRC-32 of everything before it (4 bytes)

A varint is LEB128: 7 bits per byte, low bits first, high bit set on every byte but the last. The
header of one tensor of shape (64, 32, 3, 3) costs 1 + 1 + 1 + 1 + 1 = 5 bytes. The CRC makes a
corrupted or truncated payload fail fast with :class:`~fedwave.errors.PayloadError`, so the base
station can treat that update as lost.

:class:`Reader` checks every read against the bytes that are actually there, so a decoder never
allocates memory in proportion to a size field it has not validated.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch

from fedwave.errors import PayloadError

try:  # ISA-L's CRC-32: zlib's checksum (same polynomial, same values), about 4x faster on x86-64
    from isal.isal_zlib import crc32
except ImportError:  # a platform without isal's wheel: the standard library's
    from zlib import crc32

#: Bytes-like pieces of a payload: written out by one join when the payload is framed.
Chunk = bytes | bytearray | memoryview

MAGIC = 0xFE
#: Payload format version. 2: qsgd packs sign and level in base 2s + 1, drive/eden rotate twice (H D2 H D1);
#: version-1 payloads of those codecs would decode to other values, so they are refused, not misread.
VERSION = 2
#: Most elements (coordinates) one payload may describe, over all its tensors.
MAX_ELEMENTS = 2**28
#: Most dimensions of one tensor (5 bits in the header).
MAX_NDIM = 31
CRC_BYTES = 4

DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 0,
    torch.float16: 1,
    torch.bfloat16: 2,
    torch.float64: 3,
}
CODE_DTYPES: dict[int, torch.dtype] = {code: dtype for dtype, code in DTYPE_CODES.items()}


class CodecId(IntEnum):
    """The one-byte codec identifier written in every header."""

    FP32 = 1
    FP16 = 2
    BF16 = 3
    UNIFORM = 4
    QSGD = 5
    TERNGRAD = 6
    SIGN = 7
    TOPK = 8
    RANDK = 9
    EDEN = 10
    DRIVE = 11
    POWERSGD = 12


@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of one tensor of a payload."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @classmethod
    def of(cls, tensor: torch.Tensor) -> TensorMeta:
        """The shape and dtype of ``tensor``."""
        return cls(tuple(int(s) for s in tensor.shape), tensor.dtype)

    @property
    def numel(self) -> int:
        """Number of elements (coordinates), an exact Python integer."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def span(self) -> int:
        """Product of the non-zero dimensions (exact): what torch's shape and stride arithmetic handles.

        A shape such as ``(0, 2**28, 2**28, 2**28)`` has no elements, but its strides overflow int64;
        every shape a payload may carry has a span of at most :data:`MAX_ELEMENTS`.
        """
        n = 1
        for s in self.shape:
            n *= s or 1
        return n

    def describe(self) -> str:
        """``(10, 3) float32``, for error messages."""
        return f"{self.shape} {str(self.dtype).removeprefix('torch.')}"


def metas_of(tensors: Sequence[torch.Tensor]) -> list[TensorMeta]:
    """The :class:`TensorMeta` of every tensor, e.g. the expected layout of a model's update."""
    return [TensorMeta.of(t) for t in tensors]


def varint(value: int) -> bytes:
    """LEB128 encoding of a non-negative integer (1 byte per 7 bits)."""
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Writer:
    """Collects the bytes of a payload body."""

    def __init__(self) -> None:
        self._parts: list[Chunk] = []

    def raw(self, data: Chunk | np.ndarray) -> None:
        """Append bytes as they are: ``bytes``, or a C-contiguous NumPy array's memory (held by
        reference, not copied, until the payload is framed: the caller must not change it before that)."""
        if isinstance(data, np.ndarray):
            if not data.flags.c_contiguous:
                raise ValueError("Writer.raw needs a C-contiguous array")
            data = data.data.cast("B")
        self._parts.append(data)

    def u8(self, value: int) -> None:
        """Append one byte."""
        self._parts.append(bytes((value,)))

    def varint(self, value: int) -> None:
        """Append a LEB128 varint."""
        self._parts.append(varint(value))

    def u64(self, value: int) -> None:
        """Append an unsigned 64-bit integer (8 bytes)."""
        self._parts.append(struct.pack("<Q", value))

    def f32(self, values: torch.Tensor) -> None:
        """Append a tensor as float32 values (4 bytes each)."""
        arr = values.detach().reshape(-1).to(torch.float32).contiguous().numpy()
        self._parts.append(arr.astype("<f4", copy=False).tobytes())

    @property
    def parts(self) -> list[Chunk]:
        """The pieces appended so far, in order (what :func:`frame` joins)."""
        return self._parts


class Reader:
    """Reads a payload with every read checked against the bytes that remain."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self.pos = start
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return self.end - self.pos

    def _need(self, n: int, what: str) -> int:
        if n < 0 or n > self.remaining:
            raise PayloadError(f"payload truncated: {what} needs {n} bytes, {self.remaining} remain")
        start = self.pos
        self.pos += n
        return start

    def require(self, n: int, what: str) -> None:
        """Raise unless at least ``n`` bytes remain (checked before allocating for them)."""
        if n > self.remaining:
            raise PayloadError(f"payload truncated: {what} needs {n} bytes, {self.remaining} remain")

    def u8(self, what: str = "a byte") -> int:
        """Read one byte."""
        return self._data[self._need(1, what)]

    def take(self, n: int, what: str = "bytes") -> bytes:
        """Read ``n`` bytes."""
        start = self._need(n, what)
        return self._data[start : start + n]

    def varint(self, what: str = "a varint", limit: int = 2**63) -> int:
        """Read a LEB128 varint and check it is at most ``limit``."""
        value = 0
        for i in range(10):
            byte = self.u8(what)
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise PayloadError(f"non-canonical varint in {what}")
                if value > limit:
                    raise PayloadError(f"{what} = {value} exceeds its bound {limit}")
                return value
        raise PayloadError(f"varint in {what} is longer than 10 bytes")

    def u64(self, what: str = "a 64-bit integer") -> int:
        """Read an unsigned 64-bit integer (8 bytes)."""
        return int(struct.unpack("<Q", self.take(8, what))[0])

    def array(self, count: int, dtype: str, what: str) -> np.ndarray:
        """Read ``count`` values of a NumPy dtype such as ``'<f4'`` (a writable copy)."""
        item = np.dtype(dtype).itemsize
        if count < 0 or count * item > self.remaining:
            raise PayloadError(
                f"payload truncated: {what} needs {count * item} bytes, {self.remaining} remain"
            )
        start = self._need(count * item, what)
        return np.frombuffer(self._data, dtype=dtype, count=count, offset=start).copy()

    def f32(self, count: int, what: str) -> torch.Tensor:
        """Read ``count`` float32 values into a new tensor."""
        return torch.from_numpy(self.array(count, "<f4", what).astype(np.float32, copy=False))

    def u8_tensor(self, count: int, what: str) -> torch.Tensor:
        """Read ``count`` bytes into a new uint8 tensor."""
        return torch.from_numpy(self.array(count, "u1", what))

    def expect_end(self) -> None:
        """Raise unless every byte was read."""
        if self.remaining:
            raise PayloadError(f"payload has {self.remaining} unexpected trailing bytes")


def frame(
    codec_id: CodecId, params: bytes, metas: Sequence[TensorMeta], body: Chunk | Sequence[Chunk]
) -> bytes:
    """Assemble a payload: header, ``body`` (bytes, or the pieces of :attr:`Writer.parts`, joined here
    in one copy) and the CRC-32 trailer."""
    head = bytearray((MAGIC, VERSION, int(codec_id)))
    head += params
    head += _layout_of(tuple(metas))
    pieces = [body] if isinstance(body, bytes | bytearray | memoryview) else list(body)
    crc = crc32(head)
    for piece in pieces:
        crc = crc32(piece, crc)
    return b"".join((bytes(head), *pieces, crc.to_bytes(CRC_BYTES, "little")))


def _layout_bytes(metas: Sequence[TensorMeta]) -> bytes:
    """The header bytes describing ``metas``: their count, then each dtype/ndim byte and dimensions."""
    out = bytearray(varint(len(metas)))
    for meta in metas:
        out.append((DTYPE_CODES[meta.dtype] << 5) | len(meta.shape))
        for dim in meta.shape:
            out += varint(dim)
    return bytes(out)


@functools.lru_cache(maxsize=64)
def _layout_of(metas: tuple[TensorMeta, ...]) -> bytes:
    """:func:`_layout_bytes`, remembered for the few layouts a run sends (a model's update, buffers)."""
    return _layout_bytes(metas)


@functools.lru_cache(maxsize=64)
def _canonical_layout(metas: tuple[TensorMeta, ...]) -> bytes | None:
    """:func:`_layout_bytes` of ``metas`` if a payload may carry them (else None: parse and refuse)."""
    if any(m.dtype not in DTYPE_CODES or len(m.shape) > MAX_NDIM or m.span > MAX_ELEMENTS for m in metas):
        return None
    if sum(m.numel for m in metas) > MAX_ELEMENTS or any(d < 0 for m in metas for d in m.shape):
        return None
    return _layout_bytes(metas)


def unframe(
    payload: bytes,
    codec_id: CodecId,
    params: bytes,
    spec: str,
    expected: Sequence[TensorMeta] | None = None,
) -> tuple[list[TensorMeta], Reader]:
    """Check a payload's checksum and header; return its tensors' metadata and a reader on the body.

    Args:
        expected: the tensors the receiver expects (count, shapes, dtypes in order), or ``None`` to
            accept any layout within :data:`MAX_ELEMENTS`. Each tensor is compared as soon as its
            header bytes are read, so a payload that disagrees is refused before any allocation in
            proportion to the sizes it claims.

    Raises:
        PayloadError: the payload is too short, corrupted, truncated, of another codec or other
            parameters, describes more than :data:`MAX_ELEMENTS` elements (in all, or in the span of one
            tensor's non-zero dimensions), or differs from ``expected``.
    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise PayloadError(f"payload must be bytes, not {type(payload).__name__}")
    payload = bytes(payload)
    if len(payload) < 4 + CRC_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is too short to hold a header")
    end = len(payload) - CRC_BYTES
    if crc32(memoryview(payload)[:end]) != int.from_bytes(payload[end:], "little"):
        raise PayloadError("payload checksum mismatch: corrupted or truncated")
    r = Reader(payload, 0, end)
    if expected is not None:  # the usual case: the very layout expected, byte for byte
        try:
            layout = _canonical_layout(tuple(expected))
        except TypeError:  # an unhashable description: compare it field by field below
            layout = None
        start = 3 + len(params)
        if (
            layout is not None
            and payload[:3] == bytes((MAGIC, VERSION, int(codec_id)))
            and payload[3:start] == params
            and payload[start : start + len(layout)] == layout
        ):
            r.pos = start + len(layout)
            return list(expected), r
    if r.u8() != MAGIC:
        raise PayloadError("not a fedwave codec payload (bad magic byte)")
    version = r.u8()
    if version != VERSION:
        raise PayloadError(f"unsupported payload version {version} (this fedwave reads {VERSION})")
    found = r.u8()
    if found != codec_id:
        name = CodecId(found).name.lower() if found in CodecId._value2member_map_ else f"id {found}"
        raise PayloadError(f"payload was encoded by codec {name!r}, cannot decode it with {spec!r}")
    if r.take(len(params), "codec parameters") != params:
        raise PayloadError(f"payload was encoded with other parameters than {spec!r}")
    count = r.varint("number of tensors", limit=r.remaining)
    if expected is not None and count != len(expected):
        raise PayloadError(f"payload holds {count} tensors, {len(expected)} expected")
    metas: list[TensorMeta] = []
    total = 0
    for i in range(count):
        byte = r.u8("tensor dtype")
        dtype = CODE_DTYPES.get(byte >> 5)
        if dtype is None:
            raise PayloadError(f"unknown dtype code {byte >> 5}")
        want = expected[i] if expected is not None else None
        if want is not None and (dtype != want.dtype or byte & 31 != len(want.shape)):
            raise PayloadError(
                f"payload tensor {i} is {dtype} with {byte & 31} dimensions, expected {want.describe()}"
            )
        meta = TensorMeta(
            tuple(r.varint("tensor dimension", limit=MAX_ELEMENTS) for _ in range(byte & 31)), dtype
        )
        if want is not None and meta.shape != want.shape:
            raise PayloadError(f"payload tensor {i} has shape {meta.shape}, expected {want.describe()}")
        if meta.span > MAX_ELEMENTS:
            raise PayloadError(
                f"payload tensor {i} of shape {meta.shape} spans more than {MAX_ELEMENTS} elements"
            )
        total += meta.numel
        if total > MAX_ELEMENTS:
            raise PayloadError(f"payload describes more than {MAX_ELEMENTS} elements")
        metas.append(meta)
    return metas, r
