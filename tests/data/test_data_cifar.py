"""CIFAR-10 python batches: a tiny fake directory in the original pickle format, and malformed ones."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fedwave.data import load_dataset
from fedwave.data.cifar import CIFAR10_CLASSES, load_cifar10
from fedwave.errors import DatasetUnavailable

PER_BATCH = 4


def _write_fake_cifar(directory: Path, *, str_keys: bool = False) -> None:
    """Five train batches and a test batch of PER_BATCH images each, plus batches.meta."""
    directory.mkdir(parents=True, exist_ok=True)

    def key(k: str) -> str | bytes:
        return k if str_keys else k.encode()

    rng = np.random.default_rng(0)
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for b, name in enumerate(names):
        data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        data[:, :1024] = 10 * b  # red plane constant per batch, to check the channel layout
        batch = {
            key("batch_label"): key(f"batch {b}"),
            key("labels"): [(b + i) % 10 for i in range(PER_BATCH)],
            key("data"): data,
            key("filenames"): [key(f"img{i}.png") for i in range(PER_BATCH)],
        }
        with (directory / name).open("wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    meta = {key("label_names"): [key(n) for n in CIFAR10_CLASSES], key("num_vis"): 3072}
    with (directory / "batches.meta").open("wb") as fh:
        pickle.dump(meta, fh, protocol=2)


@pytest.mark.parametrize("str_keys", [False, True])
def test_data_cifar_fake_dir_loads(tmp_path: Path, str_keys: bool) -> None:
    _write_fake_cifar(tmp_path / "cifar-10-batches-py", str_keys=str_keys)
    x_train, y_train, x_test, y_test, classes = load_cifar10(tmp_path)  # the parent dir is accepted
    assert x_train.shape == (5 * PER_BATCH, 3, 32, 32) and x_test.shape == (PER_BATCH, 3, 32, 32)
    assert classes == CIFAR10_CLASSES
    assert np.all(x_train[:PER_BATCH, 0] == 0) and np.all(
        x_train[PER_BATCH:, 0] == x_train[PER_BATCH:, 0, :1, :1]
    )
    assert np.all(x_test[:, 0] == 50)
    assert y_train[:3].tolist() == [0, 1, 2] and y_test.dtype == np.int64


def test_data_cifar_load_dataset(tmp_path: Path) -> None:
    _write_fake_cifar(tmp_path)
    ds = load_dataset("cifar10", root=str(tmp_path))
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10 and len(ds.mean) == 3
    assert ds.x_train.dtype == torch.float32 and ds.x_train.shape[0] == 5 * PER_BATCH
    assert torch.allclose(ds.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    raw = ds.denormalize(ds.x_test)
    assert torch.allclose(raw[:, 0], torch.full_like(raw[:, 0], 50 / 255), atol=1e-5)


def test_data_cifar_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match=r"data\.root=DIR"):
        load_dataset("cifar10")
    with pytest.raises(DatasetUnavailable, match="no CIFAR-10 python batches"):
        load_dataset("cifar10", root=tmp_path)


def test_data_cifar_wrong_keys(tmp_path: Path) -> None:
    _write_fake_cifar(tmp_path)
    with (tmp_path / "data_batch_3").open("wb") as fh:
        pickle.dump({b"images": np.zeros((2, 3072), np.uint8)}, fh)
    with pytest.raises(DatasetUnavailable, match=r"data_batch_3: missing key\(s\) \['data', 'labels'\]"):
        load_cifar10(tmp_path)


def test_data_cifar_truncated_and_hostile(tmp_path: Path) -> None:
    _write_fake_cifar(tmp_path)
    blob = (tmp_path / "test_batch").read_bytes()
    (tmp_path / "test_batch").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetUnavailable, match="test_batch: not a CIFAR-10 python batch"):
        load_cifar10(tmp_path)
    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump({b"data": os.getcwd}, fh)  # a global outside the allow-list
    with pytest.raises(DatasetUnavailable, match="not allowed"):
        load_cifar10(tmp_path)


def test_data_cifar_bad_shape(tmp_path: Path) -> None:
    _write_fake_cifar(tmp_path)
    with (tmp_path / "data_batch_1").open("wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(DatasetUnavailable, match=r"data_batch_1: 'data' must be uint8 of shape \(n, 3072\)"):
        load_cifar10(tmp_path)
