"""Index-level helpers used when loading: a stratified train/test split and a seeded subsample."""

from __future__ import annotations

import numpy as np

from fedwave.errors import ConfigError


def stratified_split(
    labels: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so each class sends ``round(n_c * test_fraction)`` samples to the test set.

    Every class with at least two samples keeps at least one sample on each side; a class with a single
    sample stays in the training set.

    Args:
        labels: int labels, shape ``(N,)``.
        test_fraction: in (0, 1).
        rng: the generator that picks which samples go to the test set.

    Returns:
        ``(train_idx, test_idx)``: disjoint, sorted int64 arrays covering ``0..N-1``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = 0 if members.size < 2 else min(max(round(members.size * test_fraction), 1), members.size - 1)
        test.append(rng.choice(members, size=n_test, replace=False))
    is_test = np.zeros(labels.shape[0], dtype=bool)
    is_test[np.concatenate(test).astype(np.int64)] = True
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def subsample(n: int, max_n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted int64 indices of ``min(n, max_n)`` samples drawn without replacement (all of them if None)."""
    if max_n is None or max_n >= n:
        return np.arange(n, dtype=np.int64)
    if max_n < 1:
        raise ConfigError(f"max_train must be >= 1 (or None for all samples), got {max_n}")
    return np.sort(rng.choice(n, size=max_n, replace=False)).astype(np.int64)
