"""Leakage metrics on constructed images with known values; optimal matching."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from fedwave.privacy.metrics import (
    match,
    pairwise_mse,
    psnr,
    sample_metrics,
    ssim,
    ssim_window,
    summarize,
)


def test_psnr_of_a_known_uniform_error() -> None:
    true = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.8
    for delta in (0.1, 0.01, 0.25):
        recon = true + delta
        scores = sample_metrics(recon, torch.zeros(3), true, torch.zeros(3))
        for s in scores:
            assert s.mse == pytest.approx(delta**2, rel=1e-5)
            assert s.psnr == pytest.approx(-20 * math.log10(delta), abs=1e-3)  # 10 log10(1/delta^2)
    assert psnr(0.0) == math.inf
    assert psnr(1e-6) == pytest.approx(60.0)


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 3, 28, 28), (2, 1, 40)])
def test_ssim_identical_is_one_and_constant_images_follow_the_luminance_formula(shape) -> None:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(ssim(x, x), torch.ones(shape[0], dtype=torch.float64), atol=1e-12)
    a, b = 0.2, 0.5
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # sigma = 0: SSIM is the luminance term alone
    got = ssim(torch.full(shape, a), torch.full(shape, b))
    assert torch.allclose(got, torch.full((shape[0],), expected, dtype=torch.float64), atol=1e-9)


def test_ssim_decreases_with_noise_and_is_symmetric() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 28, 28, generator=g)
    n = torch.randn(1, 1, 28, 28, generator=g)
    values = [float(ssim((x + s * n).clamp(0, 1), x)) for s in (0.0, 0.05, 0.2, 0.5)]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(1.0)
    y = (x + 0.1 * n).clamp(0, 1)
    assert float(ssim(x, y)) == pytest.approx(float(ssim(y, x)), abs=1e-12)


def test_ssim_window_fits_small_images() -> None:
    assert ssim_window((28, 28)) == 11
    assert ssim_window((8, 8)) == 7
    assert ssim_window((5, 9)) == 5
    assert ssim_window((6, 6)) == 5
    assert ssim_window((40,)) == 11


def test_matching_undoes_a_permutation() -> None:
    g = torch.Generator().manual_seed(3)
    true = torch.rand(6, 1, 8, 8, generator=g)
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    recon = true[perm] + 0.01 * torch.randn(6, 1, 8, 8, generator=g)
    order = match(recon, true)
    assert torch.equal(perm[torch.as_tensor(order)], torch.arange(6))
    labels = torch.arange(6)
    scores = sample_metrics(recon, labels[perm], true, labels)
    assert all(s.label_correct for s in scores)
    assert all(s.psnr > 35 for s in scores)


def test_matching_is_optimal_against_brute_force() -> None:
    g = torch.Generator().manual_seed(4)
    recon, true = torch.rand(5, 1, 4, 4, generator=g), torch.rand(5, 1, 4, 4, generator=g)
    cost = pairwise_mse(recon, true).numpy()
    order = match(recon, true)
    got = sum(cost[order[i], i] for i in range(5))
    best = min(sum(cost[p[i], i] for i in range(5)) for p in itertools.permutations(range(5)))
    assert got == pytest.approx(best, rel=1e-12)
    identity = sum(cost[i, i] for i in range(5))
    assert got <= identity + 1e-15


def test_summary_median_best_and_label_accuracy() -> None:
    true = torch.zeros(3, 1, 8, 8)
    recon = torch.stack([torch.full((1, 8, 8), d) for d in (0.1, 0.01, 0.001)])
    scores = sample_metrics(recon, torch.tensor([1, 2, 9]), true, torch.tensor([1, 2, 3]))
    s = summarize(scores)
    assert s["psnr_median"] == pytest.approx(40.0, abs=1e-3)
    assert s["psnr_best"] == pytest.approx(60.0, abs=1e-3)
    assert s["mse_best"] == pytest.approx(1e-6, rel=1e-5)
    assert s["label_accuracy"] == pytest.approx(2 / 3)
    assert np.isfinite(s["ssim_median"])
    with pytest.raises(ValueError):
        match(recon, true[:2])
