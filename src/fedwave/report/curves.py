"""Averaging step curves over seeds whose x values (simulated s, bytes) differ.

A run's accuracy is known only at its round ends and holds until the next round end, so a seed's curve
is a right-continuous step function ``y(x) = y_i`` for ``x_i <= x < x_{i+1}``, defined from its first to its
last round end (a finished seed is never extrapolated). Seeds are put on a common grid, the sorted union of
their x values; at each grid point the mean and the band (min–max, or mean ± sample std) are taken over the
seeds that have a value there, and ``count`` says how many do. Where ``count`` equals the number of seeds
the statistics cover every seed; beyond the shortest seed they cover the seeds still running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: Band kinds understood by :func:`step_mean`.
BANDS = ("minmax", "std")


@dataclass(frozen=True)
class StepStats:
    """Mean and band of several step curves on a common grid (all arrays of equal length)."""

    x: Array
    mean: Array
    lo: Array
    hi: Array
    n: int
    count: npt.NDArray[np.int64]
    ends: Array  # the last x of every seed, ascending


def step_value(x: Array, y: Array, at: Array) -> Array:
    """Values of the step function through ``(x, y)`` (``x`` ascending) at ``at``; NaN before ``x[0]``."""
    idx = np.searchsorted(x, at, side="right") - 1
    out = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
    return out.astype(np.float64)


def step_mean(curves: Sequence[tuple[Array, Array]], band: str = "minmax") -> StepStats:
    """Point-wise mean and band of step curves ``(x, y)`` (see the module docstring).

    Points with NaN ``y`` are dropped first. An empty result means the seeds' ranges do not overlap.
    """
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    clean = []
    for x, y in curves:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        keep = ~np.isnan(y)
        if keep.any():
            order = np.argsort(x[keep], kind="stable")
            clean.append((x[keep][order], y[keep][order]))
    empty = np.empty(0, dtype=np.float64)
    if not clean:
        return StepStats(empty, empty, empty, empty, 0, np.empty(0, dtype=np.int64), empty)
    grid = np.unique(np.concatenate([x for x, _ in clean]))
    values = np.vstack([np.where(grid <= x[-1], step_value(x, y, grid), np.nan) for x, y in clean])
    present = ~np.isnan(values)
    count = present.sum(axis=0).astype(np.int64)
    keep = count > 0
    grid, values, present, count = grid[keep], values[:, keep], present[:, keep], count[keep]
    mean = np.nanmean(values, axis=0)
    if band == "minmax":
        lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    else:
        dev = np.where(present, values - mean, 0.0)
        var = (dev**2).sum(axis=0) / np.maximum(count - 1, 1)
        sd = np.where(count > 1, np.sqrt(var), 0.0)
        lo, hi = mean - sd, mean + sd
    ends = np.sort(np.array([float(x[-1]) for x, _ in clean]))
    return StepStats(grid, mean, lo, hi, len(clean), count, ends)
