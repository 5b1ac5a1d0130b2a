"""Shared helper of the DP tests: a sample-variance test against a configured noise std.

For n i.i.d. N(0, s^2) draws, (n - 1) var / s^2 follows a chi-square law with n - 1 degrees of freedom;
the acceptance band is its two-sided quantile range at level p (1e-6: about +-0.7% of the variance for
10^6 draws, +-2% for 10^5), so a noise scale that is off by a few percent fails.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import pytest
import torch
from scipy.stats import chi2

logging.getLogger("absl").setLevel(logging.ERROR)  # dp-accounting's RDP logs convergence notes

VarianceCheck = Callable[..., None]


def check_variance(samples: torch.Tensor, std: float, p: float = 1e-6) -> None:
    """Assert that zero-mean ``samples`` have variance ``std``^2 (chi-square band) and mean ~0."""
    x = samples.double().flatten()
    n = x.numel()
    var = float(x.var(unbiased=True))
    lo, hi = chi2.ppf(p / 2, n - 1) / (n - 1), chi2.ppf(1 - p / 2, n - 1) / (n - 1)
    assert lo * std**2 <= var <= hi * std**2, f"variance {var} vs {std**2} (band {lo:.4f}..{hi:.4f})"
    assert abs(float(x.mean())) <= 5.5 * std / math.sqrt(n)


@pytest.fixture
def assert_variance() -> VarianceCheck:
    return check_variance
