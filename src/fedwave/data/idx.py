"""The IDX file format of MNIST and Fashion-MNIST: read and write, plain or gzip-compressed.

An IDX file is a big-endian header followed by the raw array, row-major::

    bytes 0-1   zero
    byte  2     element type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)
    byte  3     number of dimensions d
    next 4*d    each dimension as a big-endian uint32
    the rest    prod(dims) elements of that type, big-endian

A file whose first two bytes are the gzip magic ``1f 8b`` is decompressed first, whatever its name.
Every problem with a file raises :class:`~fedwave.errors.DatasetUnavailable` naming the file.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from fedwave.errors import DatasetUnavailable

#: element type code -> big-endian NumPy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _bad(path: Path, problem: str) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"{path}: not a valid IDX file ({problem}); re-install the dataset or replace the file"
    )


def read_idx_bytes(path: str | Path) -> bytes:
    """Return the (decompressed) bytes of ``path``; gzip is detected by its magic number."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetUnavailable(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise _bad(path, f"corrupt gzip data: {exc}") from None


def parse_idx(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array in native byte order, shape ``dims``.

    Args:
        data: the whole (decompressed) file.
        path: only used in error messages.

    Raises:
        DatasetUnavailable: bad magic number, unknown type code, or a length that does not match the header.
    """
    path = Path(path)
    if len(data) < 4:
        raise _bad(path, f"{len(data)} bytes, shorter than the 4-byte magic number")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise _bad(path, f"bad magic number 0x{data[:4].hex()}, expected 0x0000 then type and ndims")
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise _bad(path, f"unknown element type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise _bad(path, "zero dimensions in header")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _bad(path, f"truncated header: {ndim} dimensions need {header} bytes, file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) < expected:
        raise _bad(path, f"truncated: header {dims} needs {expected} bytes, file has {len(data)}")
    if len(data) > expected:
        raise _bad(path, f"{len(data) - expected} trailing bytes after the {dims} array")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a writable native-byte-order array of shape ``dims``."""
    return parse_idx(read_idx_bytes(path), path)


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip it when ``compress`` is true (default: name ends in ``.gz``).

    The array's dtype must be one of the IDX types (uint8, int8, int16, int32, float32, float64).
    """
    path = Path(path)
    arr = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {arr.ndim}")
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path
