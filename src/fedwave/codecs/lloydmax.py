"""Lloyd-Max quantizers of the standard normal distribution (Max, 1960).

For ``2**b`` levels the centroids ``c_j`` and boundaries ``t_j = (c_j + c_{j+1}) / 2`` satisfy
``c_j = E[Z | t_{j-1} < Z <= t_j]`` (Lloyd's conditions). The quantizer is symmetric, so only the
positive centroids are solved for: starting from the companding rule (quantiles of N(0, 3), the
density to the power 1/3), a few Lloyd iterations, then Newton's method on the fixed point (its
Jacobian is tridiagonal), in float64, to a residual below 1e-12. The mean squared error
``D_b = E[(Z - Q(Z))^2] = 1 - E[Q(Z)^2]`` is about 0.3634, 0.1175, 0.03455 and 0.009501 for b = 1..4.
"""

from __future__ import annotations

import functools
import math

import torch

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_F64 = torch.float64


def _pdf(t: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * t * t) * _INV_SQRT_2PI


def _tail(t: torch.Tensor) -> torch.Tensor:
    """P(Z > t), accurate in the upper tail."""
    return 0.5 * torch.special.erfc(t / _SQRT2)


def _bounds(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper ends of the cells of the positive centroids ``c``."""
    t = torch.cat([torch.zeros(1, dtype=_F64), (c[:-1] + c[1:]) / 2, torch.full((1,), math.inf, dtype=_F64)])
    return t[:-1], t[1:]


def _lloyd(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Lloyd step (the conditional means of the cells) and its Jacobian with respect to ``c``."""
    lo, hi = _bounds(c)
    prob = _tail(lo) - _tail(hi)
    pdf_lo, pdf_hi = _pdf(lo), _pdf(hi)
    mean = (pdf_lo - pdf_hi) / prob
    d_lo = pdf_lo * (mean - lo) / prob  # d mean / d lo
    d_hi = torch.where(torch.isinf(hi), torch.zeros_like(hi), pdf_hi * (hi - mean) / prob)
    d_lo[0] = 0.0  # the first cell starts at 0, which does not move
    h = c.numel()
    jac = torch.zeros(h, h, dtype=_F64)
    idx = torch.arange(h)
    jac[idx, idx] = (d_lo + d_hi) / 2
    jac[idx[1:], idx[:-1]] = d_lo[1:] / 2
    jac[idx[:-1], idx[1:]] = d_hi[:-1] / 2
    return mean, jac


@functools.lru_cache(maxsize=8)
def lloyd_max_normal(bits: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Centroids (ascending), boundaries (float64) and MSE of the ``bits``-bit quantizer of N(0, 1)."""
    half = 1 << (bits - 1)
    q = (torch.arange(half, dtype=_F64) + half + 0.5) / (2 * half)
    c = math.sqrt(3.0) * torch.special.ndtri(q)
    for _ in range(20):
        c = _lloyd(c)[0]
    eye = torch.eye(half, dtype=_F64)
    for _ in range(10_000):
        mean, jac = _lloyd(c)
        residual = mean - c
        if float(residual.abs().max()) < 1e-12:
            break
        step = torch.linalg.solve(jac - eye, residual)
        candidate = c - step
        ordered = bool((candidate[1:] > candidate[:-1]).all()) and float(candidate[0]) > 0
        c = candidate if ordered else mean  # if Newton leaves the ordered region, take a Lloyd step
    lo, hi = _bounds(c)
    mse = 1.0 - 2.0 * float(((_tail(lo) - _tail(hi)) * c * c).sum())
    centroids = torch.cat([-c.flip(0), c])
    return centroids, (centroids[:-1] + centroids[1:]) / 2, mse
