"""Client-level mechanisms: clipping bounds, noise of the configured std, distributed shares, denominator.

Noise tests use the chi-square band of the sample variance (``assert_variance`` in conftest.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from fedwave.privacy.dp import (
    add_gaussian_noise,
    central_noise_std,
    clip_update,
    delivered_noise_std,
    distributed_share_std,
    fixed_denominator,
    fixed_denominator_mean,
    gaussian_noise,
    global_l2_norm,
)
from fedwave.rng import torch_generator

VarianceCheck = Callable[..., None]  # the assert_variance fixture (conftest.py)

SHAPES = [torch.Size([7, 3, 3, 3]), torch.Size([7]), torch.Size([40, 63]), torch.Size([10])]


def _update(seed: int, norm: float) -> list[torch.Tensor]:
    g = torch_generator(seed, "test-update")
    tensors = [torch.randn(s, generator=g) for s in SHAPES]
    scale = norm / global_l2_norm(tensors)
    return [t * scale for t in tensors]


def test_global_norm_is_over_all_tensors() -> None:
    tensors = [torch.full((4,), 1.0), torch.full((2, 3), 2.0)]
    assert global_l2_norm(tensors) == pytest.approx(math.sqrt(4 + 6 * 4), rel=1e-12)


@pytest.mark.parametrize("norm", [1e-3, 0.5, 2.0, 2.0000001, 3.7, 1e4])
def test_clipping_bounds_every_update_and_keeps_its_direction(norm: float) -> None:
    clip = 2.0
    update = _update(int(norm * 1000) % 97, norm)
    original_norm = global_l2_norm(update)
    clipped, factor = clip_update(update, clip)
    assert global_l2_norm(clipped) <= clip
    if original_norm <= clip:
        assert factor == 1.0 and all(c is u for c, u in zip(clipped, update))  # untouched
    else:
        assert factor == pytest.approx(clip / original_norm, rel=2e-6)
        assert global_l2_norm(clipped) == pytest.approx(clip, rel=2e-6)
        for c, u in zip(clipped, update):
            torch.testing.assert_close(c, u * (clip / original_norm), rtol=1e-5, atol=1e-9)


def test_no_clipping_and_zero_noise_are_exact_no_ops() -> None:
    update = _update(3, 50.0)
    update[0][0, 0, 0, 0] = -0.0
    clipped, factor = clip_update(update, None)
    assert factor == 1.0 and all(c is u for c, u in zip(clipped, update))
    g = torch_generator(0, "noise")
    state = g.get_state()
    noised = add_gaussian_noise(clipped, 0.0, g)
    assert all(n is u for n, u in zip(noised, update))
    assert torch.equal(g.get_state(), state)  # nothing drawn
    assert math.copysign(1.0, float(noised[0][0, 0, 0, 0])) == -1.0


def test_bad_clip_and_std_are_refused() -> None:
    with pytest.raises(ValueError, match="clip bound"):
        clip_update(_update(0, 1.0), 0.0)
    with pytest.raises(ValueError, match="std"):
        gaussian_noise([torch.Size([3])], -1.0, torch_generator(0, "x"))


def test_central_noise_has_the_configured_std(assert_variance: VarianceCheck) -> None:
    z, clip = 1.3, 0.7
    std = central_noise_std(z, clip)
    assert std == pytest.approx(0.91)
    zeros = [torch.zeros(500_000), torch.zeros(1000, 500)]
    noised = add_gaussian_noise(zeros, std, torch_generator(1, "central"))
    assert_variance(torch.cat([t.flatten() for t in noised]), std)


def test_noise_is_added_to_the_update_not_replacing_it() -> None:
    update = _update(5, 3.0)
    noised = add_gaussian_noise(update, 0.2, torch_generator(2, "n"))
    diff = torch.cat([(n - u).flatten() for n, u in zip(noised, update)])
    assert float(diff.abs().max()) < 0.2 * 6
    again = add_gaussian_noise(update, 0.2, torch_generator(2, "n"))
    assert all(torch.equal(a, b) for a, b in zip(noised, again))  # same generator, same noise


def test_distributed_shares_sum_to_the_planned_variance(assert_variance: VarianceCheck) -> None:
    z, clip, planned = 1.5, 0.8, 8
    share = distributed_share_std(z, clip, planned)
    assert share == pytest.approx(z * clip / math.sqrt(planned))
    size = 400_000
    shares = [
        add_gaussian_noise([torch.zeros(size)], share, torch_generator(0, "round", 3, "ue", k, "dp"))[0]
        for k in range(planned)
    ]
    assert_variance(torch.stack(shares).sum(0), central_noise_std(z, clip))
    # Only 5 of the 8 shares arrive: the sum carries std z S sqrt(5/8), clearly below the plan.
    delivered = torch.stack(shares[:5]).sum(0)
    std_5 = delivered_noise_std(z, clip, 5, planned)
    assert std_5 == pytest.approx(z * clip * math.sqrt(5 / 8))
    assert_variance(delivered, std_5)
    with pytest.raises(AssertionError):
        assert_variance(delivered, central_noise_std(z, clip))


def test_delivered_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="delivered"):
        delivered_noise_std(1.0, 1.0, 9, 8)
    with pytest.raises(ValueError, match="planned"):
        distributed_share_std(1.0, 1.0, 0)


def test_fixed_denominator_estimate_is_unbiased_under_poisson_sampling() -> None:
    """E[sum of the sampled updates] / (q N) is the mean of all N updates (McMahan et al. 2018)."""
    num_ues, q, trials = 20, 0.25, 20_000
    assert fixed_denominator(q, num_ues) == 5.0
    values = torch.linspace(-1.0, 3.0, num_ues, dtype=torch.float64)
    g = torch_generator(0, "poisson-test")
    picked = torch.rand(trials, num_ues, generator=g, dtype=torch.float64) < q
    estimates = (picked * values).sum(1) / fixed_denominator(q, num_ues)
    se = float(estimates.std()) / math.sqrt(trials)
    assert abs(float(estimates.mean()) - float(values.mean())) < 5 * se
    mean = fixed_denominator_mean([torch.tensor([10.0, -5.0])], q, num_ues)
    torch.testing.assert_close(mean[0], torch.tensor([2.0, -1.0]))
    with pytest.raises(ValueError):
        fixed_denominator(0.0, 20)
