"""The IDX reader and writer, on tiny files written here (plain and gzip), and its errors on bad files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fedwave.data.idx import read_idx, write_idx
from fedwave.data.mnist import find_idx_set, load_idx_set
from fedwave.errors import DatasetUnavailable


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_data_idx_round_trip(tmp_path: Path, dtype: type, suffix: str) -> None:
    arr: np.ndarray = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    path = write_idx(tmp_path / f"a-idx3-ubyte{suffix}", arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] = 1  # writable, native order


def test_data_idx_header_layout(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.array([7, 2, 1], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1])
    big = write_idx(tmp_path / "i32", np.array([1, -2], dtype=np.int32))
    assert big.read_bytes()[8:] == struct.pack(">ii", 1, -2)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"\x00\x00", "shorter than the 4-byte magic"),
        (b"\x01\x02\x08\x01" + b"\x00" * 8, "bad magic number"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown element type code 0x07"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03" + b"\x01" * 5, "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02" + b"\x01" * 3, "trailing bytes"),
    ],
)
def test_data_idx_malformed(tmp_path: Path, payload: bytes, problem: str) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DatasetUnavailable, match=problem) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_data_idx_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x04abcd")[:-6])
    with pytest.raises(DatasetUnavailable, match=r"x\.gz.*gzip"):
        read_idx(path)
    with pytest.raises(DatasetUnavailable, match="cannot read"):
        read_idx(tmp_path / "missing")


def _write_set(directory: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> None:
    ext = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            directory / f"{stem}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        write_idx(directory / f"{stem}-labels-idx1-ubyte{ext}", (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.parametrize("gz", [True, False])
def test_data_idx_set(tmp_path: Path, gz: bool) -> None:
    _write_set(tmp_path, gz=gz)
    assert find_idx_set(tmp_path) is not None
    x_train, y_train, x_test, y_test = load_idx_set(tmp_path)
    assert x_train.shape == (6, 1, 28, 28) and x_train.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.tolist() == [0, 1, 2, 3]
    assert x_test.shape == (4, 1, 28, 28)


def test_data_idx_set_mismatch(tmp_path: Path) -> None:
    _write_set(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DatasetUnavailable, match=r"t10k-labels.*3,.*labels for 4 images"):
        load_idx_set(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 8, 8), dtype=np.uint8))
    with pytest.raises(DatasetUnavailable, match=r"t10k-images.*\(N, 28, 28\)"):
        load_idx_set(tmp_path)
