"""Where the UEs are: uniform placement in an annulus around the BS, or given positions.

The BS sits at the origin; positions are 2-D coordinates in m.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def sample_positions(
    rng: np.random.Generator, num_ues: int, radius_m: float, d_min_m: float
) -> NDArray[np.float64]:
    """Draw ``num_ues`` positions uniformly (by area) in the annulus ``d_min_m <= d <= radius_m``.

    The distance is drawn by inverting the area CDF, d = sqrt(U (R^2 - d_min^2) + d_min^2), and the
    angle uniformly in [0, 2 pi).

    Returns:
        Array of shape ``(num_ues, 2)``: x and y in m.
    """
    if not 0.0 < d_min_m <= radius_m:
        raise ValueError(f"need 0 < d_min_m <= radius_m, got d_min_m={d_min_m}, radius_m={radius_m}")
    u = rng.random(num_ues)
    theta = rng.uniform(0.0, 2.0 * np.pi, num_ues)
    d = np.sqrt(u * (radius_m**2 - d_min_m**2) + d_min_m**2)
    return np.stack([d * np.cos(theta), d * np.sin(theta)], axis=1)


def distances_m(positions_m: ArrayLike) -> NDArray[np.float64]:
    """Distance in m of each position (shape ``(n, 2)``) from the BS at the origin."""
    p = np.asarray(positions_m, dtype=float).reshape(-1, 2)
    return np.hypot(p[:, 0], p[:, 1])
