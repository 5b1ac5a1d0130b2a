"""Properties of the partitioners: disjoint, complete, seeded, and the class balance each one promises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedwave.data import format_histogram, label_histogram, partition, partitioner_names, partitioner_params
from fedwave.errors import ConfigError

# (method, params) whose parts must cover every index
COMPLETE = [
    ("iid", {}),
    ("iid", {"sizes": "lognormal", "lognormal_sigma": 1.0}),
    ("dirichlet", {"alpha": 1.0}),
    ("shards", {"shards_per_user": 2}),
    ("unique_class", {}),
]
FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def labelled(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """Labels with every class present at least 8 times, and a user count that every method can serve."""
    num_classes = draw(st.integers(2, 6))
    per_class = draw(st.lists(st.integers(8, 40), min_size=num_classes, max_size=num_classes))
    labels = np.repeat(np.arange(num_classes), per_class)
    order = draw(st.permutations(range(labels.size)))
    num_users = draw(st.integers(num_classes, num_classes + 2))
    return labels[np.asarray(order)], num_users


def _check_disjoint_sorted(parts: list[np.ndarray], n: int) -> np.ndarray:
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)
    allidx = np.concatenate(parts)
    assert np.unique(allidx).size == allidx.size
    assert allidx.size == 0 or (allidx.min() >= 0 and allidx.max() < n)
    return allidx


@pytest.mark.parametrize(("method", "params"), COMPLETE)
@FAST
@given(data=labelled(), seed=st.integers(0, 2**31))
def test_data_partition_disjoint_and_complete(
    method: str, params: dict[str, Any], data: tuple[np.ndarray, int], seed: int
) -> None:
    labels, num_users = data
    parts = partition(method, labels, num_users, seed=seed, **params)
    assert len(parts) == num_users
    allidx = _check_disjoint_sorted(parts, labels.size)
    assert allidx.size == labels.size


@FAST
@given(data=labelled(), seed=st.integers(0, 2**31))
def test_data_partition_balanced_equal_counts(data: tuple[np.ndarray, int], seed: int) -> None:
    labels, num_users = data
    parts = partition("balanced", labels, num_users, seed=seed)
    _check_disjoint_sorted(parts, labels.size)
    hist = label_histogram(parts, labels, int(labels.max()) + 1)
    counts = np.bincount(labels)
    assert np.all(hist == counts.min() // num_users)


@FAST
@given(data=labelled(), seed=st.integers(0, 2**31))
def test_data_partition_unique_class_one_class_per_user(data: tuple[np.ndarray, int], seed: int) -> None:
    labels, num_users = data
    parts = partition("unique_class", labels, num_users, seed=seed)
    for p in parts:
        assert p.size > 0
        assert np.unique(labels[p]).size == 1


@FAST
@given(
    num_classes=st.integers(2, 6),
    shards_per_user=st.integers(1, 3),
    num_users=st.integers(1, 8),
    shard_size=st.integers(1, 5),
    seed=st.integers(0, 2**31),
)
def test_data_partition_shards_label_pure(
    num_classes: int, shards_per_user: int, num_users: int, shard_size: int, seed: int
) -> None:
    # every class a whole number of shards, so each shard holds a single label
    num_shards = num_users * shards_per_user
    shards_of_class = np.bincount(np.arange(num_shards) % num_classes, minlength=num_classes)
    labels = np.repeat(np.arange(num_classes), shards_of_class * shard_size)
    labels = labels[np.random.default_rng(seed).permutation(labels.size)]
    parts = partition("shards", labels, num_users, seed=seed, shards_per_user=shards_per_user)
    assert np.concatenate(parts).size == labels.size
    for p in parts:
        assert p.size == shards_per_user * shard_size
        assert np.unique(labels[p]).size <= shards_per_user


@pytest.mark.parametrize("method", ["iid", "dirichlet", "shards", "unique_class", "balanced"])
def test_data_partition_deterministic_per_seed(method: str) -> None:
    labels = np.repeat(np.arange(5), 40)
    a = partition(method, labels, 7, seed=3)
    b = partition(method, labels.copy(), 7, seed=3)
    c = partition(method, labels, 7, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_data_partition_ignores_global_rng() -> None:
    labels = np.repeat(np.arange(4), 25)
    np.random.seed(1)
    a = partition("dirichlet", labels, 5, seed=0)
    np.random.seed(2)
    b = partition("dirichlet", labels, 5, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def _mean_tv_from_global(parts: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean total-variation distance between each user's label distribution and the global one."""
    hist = label_histogram(parts, labels, int(labels.max()) + 1).astype(float)
    local = hist / hist.sum(axis=1, keepdims=True)
    glob = np.bincount(labels) / labels.size
    return float(0.5 * np.abs(local - glob).sum(axis=1).mean())


def test_data_partition_dirichlet_alpha_controls_skew() -> None:
    labels = np.repeat(np.arange(10), 300)
    near_iid = partition("dirichlet", labels, 10, seed=0, alpha=1000.0)
    skewed = partition("dirichlet", labels, 10, seed=0, alpha=0.05)
    iid = partition("iid", labels, 10, seed=0)
    assert _mean_tv_from_global(near_iid, labels) < 0.1
    assert _mean_tv_from_global(iid, labels) < 0.1
    assert _mean_tv_from_global(skewed, labels) > 0.5


def test_data_partition_dirichlet_min_size() -> None:
    labels = np.repeat(np.arange(10), 50)
    parts = partition("dirichlet", labels, 10, seed=0, alpha=0.1, min_size=10)
    assert min(p.size for p in parts) >= 10
    with pytest.raises(ConfigError, match="max_tries"):
        partition("dirichlet", labels, 10, seed=0, alpha=0.01, min_size=45, max_tries=3)


@FAST
@given(
    n=st.integers(20, 500), num_users=st.integers(2, 20), sigma=st.floats(0.1, 3.0), seed=st.integers(0, 99)
)
def test_data_partition_lognormal_sizes(n: int, num_users: int, sigma: float, seed: int) -> None:
    labels = np.arange(n) % 3
    parts = partition("iid", labels, num_users, seed=seed, sizes="lognormal", lognormal_sigma=sigma)
    sizes = np.array([p.size for p in parts])
    assert sizes.sum() == n
    assert sizes.min() >= 1


def test_data_partition_lognormal_sizes_vary() -> None:
    labels = np.arange(5000) % 10
    sizes = [p.size for p in partition("iid", labels, 50, seed=0, sizes="lognormal", lognormal_sigma=1.5)]
    equal = [p.size for p in partition("iid", labels, 50, seed=0)]
    implied = [p.size for p in partition("iid", labels, 50, seed=0, lognormal_sigma=1.5)]
    assert implied == sizes  # lognormal_sigma alone implies sizes="lognormal"
    assert max(equal) - min(equal) <= 1
    assert max(sizes) > 5 * min(sizes)
    assert np.std(sizes) / np.mean(sizes) > 0.5


@pytest.mark.parametrize(
    ("method", "params", "match"),
    [
        ("dirichlet", {"alpha": 0.0}, "alpha"),
        ("dirichlet", {"alpha": -1.0}, "alpha"),
        ("dirichlet", {"alpha": "big"}, "alpha"),
        ("iid", {"sizes": "zipf"}, "sizes"),
        ("iid", {"sizes": "lognormal", "lognormal_sigma": 0.0}, "lognormal_sigma"),
        ("iid", {"sizes": "equal", "lognormal_sigma": 1.0}, "lognormal_sigma"),
        ("iid", {"lognormal_sigma": -1.0}, "lognormal_sigma"),
        ("iid", {"beta": 1}, "beta"),
        ("shards", {"shards_per_user": 0}, "shards_per_user"),
        ("shards", {"shards_per_user": 1000}, "shards_per_user"),
        ("no_such_method", {}, "iid"),
    ],
)
def test_data_partition_bad_params(method: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        partition(method, np.arange(40) % 4, 4, seed=0, **params)


def test_data_partition_bad_users_and_labels() -> None:
    labels = np.arange(10) % 2
    with pytest.raises(ConfigError, match="num_users"):
        partition("iid", labels, 11, seed=0)
    with pytest.raises(ConfigError, match="num_users"):
        partition("iid", labels, 0, seed=0)
    with pytest.raises(ConfigError, match="number of classes"):
        partition("unique_class", np.arange(10) % 5, 3, seed=0)
    with pytest.raises(ConfigError, match="labels"):
        partition("iid", labels.astype(float), 2, seed=0)
    with pytest.raises(ConfigError, match="num_users"):
        partition("balanced", np.arange(10) % 5, 3, seed=0)


def test_data_partition_registry() -> None:
    assert partitioner_names() == ["balanced", "dirichlet", "iid", "shards", "unique_class"]
    assert partitioner_params("dirichlet") == {"alpha": 0.5, "min_size": 1, "max_tries": 100}
    assert partitioner_params("shards") == {"shards_per_user": 2}


def test_data_format_histogram() -> None:
    labels = np.repeat(np.arange(3), 10)
    parts = partition("unique_class", labels, 4, seed=0)
    hist = label_histogram(parts, labels, 3)
    assert hist.shape == (4, 3) and hist.sum() == 30
    text = format_histogram(hist)
    lines = text.splitlines()
    assert lines[0].split() == ["user", "n", "c0", "c1", "c2"]
    assert len(lines) == 1 + 4 + 1 and "4 users, 30 samples" in lines[-1]
    short = format_histogram(hist, max_rows=2).splitlines()
    assert "... 2 more users" in short
