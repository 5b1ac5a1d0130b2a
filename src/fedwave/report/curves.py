"""Averaging step curves over seeds whose x values (simulated s, bytes) differ.

A run's accuracy is known only at its round ends and holds until the next round end, so a seed's curve
is a right-continuous step function ``y(x) = y_i`` for ``x_i <= x < x_{i+1}``. Seeds are put on a common
grid, the sorted union of their x values restricted to ``[max_s x_first, min_s x_last]`` (the range where
every seed has a value), each seed is read off its step function there, and the mean and the band
(min–max, or mean ± sample std) are taken point-wise. The result is again exact as a step function.
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
        return StepStats(empty, empty, empty, empty, 0)
    start = max(float(x[0]) for x, _ in clean)
    stop = min(float(x[-1]) for x, _ in clean)
    grid = np.unique(np.concatenate([x for x, _ in clean]))
    grid = grid[(grid >= start) & (grid <= stop)]
    values = np.vstack([step_value(x, y, grid) for x, y in clean])
    mean = values.mean(axis=0)
    if band == "minmax":
        lo, hi = values.min(axis=0), values.max(axis=0)
    else:
        sd = values.std(axis=0, ddof=1) if len(clean) > 1 else np.zeros_like(mean)
        lo, hi = mean - sd, mean + sd
    return StepStats(grid, mean, lo, hi, len(clean))
