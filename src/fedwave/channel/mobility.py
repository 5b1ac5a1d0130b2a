"""Random-waypoint movement of the UEs, with shadowing that changes as they move (Gudmundson).

Each UE starts at its placed position at time 0 and walks in a straight line, at the speed ``v`` (m/s),
to a waypoint drawn uniformly (by area) in the annulus ``d_min <= d <= R``; it pauses ``pause_s`` seconds
there and walks on to the next one. A waypoint whose straight path would pass closer than ``d_min`` to
the BS is redrawn, so the UE never leaves the annulus. Waypoints come from the stream
``(seed, "mobility", "waypoints", ue)``: a UE's position is a pure function of (seed, ue, t), drawn
lazily and independent of the order of queries (nothing to checkpoint).

Shadowing follows the UE's path (Gudmundson 1991): as a function of the distance walked ``s`` it is a
Gauss-Markov process with correlation ``exp(-|s - s'| / d_corr)``, held on a grid of steps
``d_corr / 100`` (the value at ``s`` is that of the grid point at or below it), starting from the UE's
shadowing at time 0 (the cell's draw, so a UE that has not moved has the static shadowing). Innovations
come from ``(seed, "mobility", "shadowing", ue)``.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
from numpy.typing import NDArray

from fedwave.channel.gaussmarkov import ar1_filter
from fedwave.rng import numpy_generator

#: Shadowing grid points per decorrelation distance.
SHADOW_STEPS_PER_DECORRELATION = 100
#: Waypoint draws tried before giving up (the path keeps crossing the d_min disc).
_MAX_TRIES = 10_000


def segment_min_distance(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    """The smallest distance (m) from the origin of a point on the segment from ``p`` to ``q``."""
    d = q - p
    dd = float(d @ d)
    u = 0.0 if dd == 0.0 else min(1.0, max(0.0, -float(p @ d) / dd))
    return float(np.hypot(*(p + u * d)))


class _Walk:
    """One UE's legs: it leaves waypoint i at ``depart[i]`` and reaches waypoint i+1 at ``arrive[i]``."""

    __slots__ = ("arrive", "depart", "grid", "points", "rng", "shadow_rng", "walked")

    def __init__(
        self, start: NDArray[np.float64], rng: np.random.Generator, shadow0: float, srng: np.random.Generator
    ) -> None:
        self.points = [start]
        self.depart = [0.0]
        self.arrive: list[float] = []
        self.walked = [0.0]  # distance walked (m) when leaving waypoint i
        self.rng = rng
        self.grid = np.array([shadow0])  # shadowing (dB) at grid points 0, 1, 2, ... (step d_corr / 100)
        self.shadow_rng = srng


class RandomWaypoint:
    """Positions (m) and shadowing (dB) of moving UEs at any simulated time.

    Args:
        start_m: ``(N, 2)`` positions at time 0 (m).
        radius_m, d_min_m: the annulus the UEs stay in (m).
        speed_mps: walking speed (m/s).
        pause_s: pause at each waypoint (s).
        shadow0_db: ``(N,)`` shadowing at time 0 (dB); ``sigma_db`` its standard deviation.
        decorrelation_m: Gudmundson decorrelation distance (m).
        seed: the run seed.
    """

    def __init__(
        self,
        start_m: NDArray[np.float64],
        radius_m: float,
        d_min_m: float,
        speed_mps: float,
        pause_s: float,
        shadow0_db: NDArray[np.float64],
        sigma_db: float,
        decorrelation_m: float,
        seed: int,
    ) -> None:
        if not 0.0 < d_min_m < radius_m:
            raise ValueError(f"need 0 < d_min_m < radius_m, got {d_min_m} and {radius_m}")
        if not (speed_mps > 0 and math.isfinite(speed_mps)):
            raise ValueError(f"speed must be positive and finite, got {speed_mps} m/s")
        self.start_m = np.asarray(start_m, dtype=float).reshape(-1, 2)
        self.radius_m = float(radius_m)
        self.d_min_m = float(d_min_m)
        self.speed_mps = float(speed_mps)
        self.pause_s = float(pause_s)
        self.shadow0_db = np.asarray(shadow0_db, dtype=float).reshape(-1)
        self.sigma_db = float(sigma_db)
        self.step_m = float(decorrelation_m) / SHADOW_STEPS_PER_DECORRELATION
        self._a = math.exp(-1.0 / SHADOW_STEPS_PER_DECORRELATION)
        self.seed = int(seed)
        self._walks: dict[int, _Walk] = {}

    def _walk(self, ue: int) -> _Walk:
        w = self._walks.get(ue)
        if w is None:
            w = _Walk(
                self.start_m[ue].copy(),
                numpy_generator(self.seed, "mobility", "waypoints", ue),
                float(self.shadow0_db[ue]),
                numpy_generator(self.seed, "mobility", "shadowing", ue),
            )
            self._walks[ue] = w
        return w

    def _next_waypoint(self, w: _Walk) -> NDArray[np.float64]:
        p = w.points[-1]
        r2, d2 = self.radius_m**2, self.d_min_m**2
        for _ in range(_MAX_TRIES):
            u, theta = w.rng.random(), w.rng.uniform(0.0, 2.0 * math.pi)
            d = math.sqrt(u * (r2 - d2) + d2)
            q = np.array([d * math.cos(theta), d * math.sin(theta)])
            if segment_min_distance(p, q) >= self.d_min_m:
                return q
        raise RuntimeError(f"no waypoint reachable without passing within {self.d_min_m} m of the BS")

    def _cover(self, w: _Walk, t_s: float) -> int:
        """Extend the legs until one departs after ``t_s``; return the leg index in effect at ``t_s``."""
        while w.depart[-1] <= t_s:
            q = self._next_waypoint(w)
            length = float(np.hypot(*(q - w.points[-1])))
            arrive = w.depart[-1] + length / self.speed_mps
            w.arrive.append(arrive)
            w.walked.append(w.walked[-1] + length)
            w.points.append(q)
            w.depart.append(arrive + self.pause_s)
        return bisect.bisect_right(w.depart, t_s) - 1

    def state_at(self, ue: int, t_s: float) -> tuple[NDArray[np.float64], float]:
        """UE ``ue``'s position (m) and distance walked (m) at time ``t_s`` (s, >= 0)."""
        w = self._walk(ue)
        i = self._cover(w, max(0.0, t_s))
        moving = min(max(0.0, t_s - w.depart[i]), w.arrive[i] - w.depart[i])
        length = w.walked[i + 1] - w.walked[i]
        frac = 0.0 if length == 0.0 else min(1.0, moving * self.speed_mps / length)
        pos = w.points[i] + frac * (w.points[i + 1] - w.points[i])
        return pos, w.walked[i] + frac * length

    def shadowing_db(self, ue: int, walked_m: float) -> float:
        """Shadowing (dB) of UE ``ue`` after walking ``walked_m`` m along its path."""
        w = self._walk(ue)
        j = int(walked_m // self.step_m)
        if j >= w.grid.size:
            n = j - w.grid.size + 1 + 256
            z = w.shadow_rng.standard_normal(n) * (self.sigma_db * math.sqrt(1.0 - self._a**2))
            new = ar1_filter(z, self._a, 1.0, float(w.grid[-1]))
            w.grid = np.concatenate([w.grid, new])
        return float(w.grid[j])

    def at(self, ues: NDArray[np.int64], t_s: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Positions ``(len(ues), 2)`` in m and shadowing ``(len(ues),)`` in dB of ``ues`` at ``t_s`` s."""
        pos = np.empty((len(ues), 2))
        shadow = np.empty(len(ues))
        for i, ue in enumerate(ues):
            pos[i], walked = self.state_at(int(ue), t_s)
            shadow[i] = self.shadowing_db(int(ue), walked)
        return pos, shadow
