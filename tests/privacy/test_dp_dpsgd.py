"""Sample-level DP-SGD: vectorised per-example gradients, clipping, noise, Poisson batches, model checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from fedwave.errors import ConfigError
from fedwave.models import build_model, model_names
from fedwave.privacy.dp import (
    check_dpsgd_model,
    clip_per_example,
    clip_update,
    dp_sgd_gradient,
    global_l2_norm,
    per_example_gradients,
    poisson_batch,
)
from fedwave.rng import torch_generator

VarianceCheck = Callable[..., None]  # the assert_variance fixture (conftest.py)

LOSS = nn.CrossEntropyLoss()


def _data(n: int, seed: int = 0, shape: tuple[int, ...] = (1, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch_generator(seed, "dpsgd-data")
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def _loop_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[list[torch.Tensor]]:
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        loss = LOSS(model(x[i : i + 1]), y[i : i + 1])
        rows.append([g.detach() for g in torch.autograd.grad(loss, params)])
    return rows


@pytest.mark.parametrize("name", [n for n in model_names() if n != "resnet"])
def test_per_example_gradients_match_a_loop_for_the_zoo(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, (1, 8, 8), 10)
    x, y = _data(5)
    per = per_example_gradients(model, LOSS, x, y)
    loop = _loop_gradients(model, x, y)
    assert len(per) == len(list(model.parameters()))
    for j, g in enumerate(per):
        torch.testing.assert_close(g, torch.stack([row[j] for row in loop]), rtol=1e-4, atol=1e-6)


def test_per_example_clipping_matches_a_loop_and_bounds_each_example() -> None:
    torch.manual_seed(1)
    model = build_model("convnet", (1, 8, 8), 10)
    x, y = _data(12, seed=1)
    # halfway between the two middle norms: no example's norm is within rounding of the bound, so the
    # loop and the per-example gradients agree on which examples are clipped
    norms = sorted(global_l2_norm(r) for r in _loop_gradients(model, x, y))
    clip = (norms[5] + norms[6]) / 2
    per = per_example_gradients(model, LOSS, x, y)
    clipped, factors = clip_per_example(per, clip)
    for i, row in enumerate(_loop_gradients(model, x, y)):
        expected, factor = clip_update(row, clip)
        got = [c[i] for c in clipped]
        assert global_l2_norm(got) <= clip * (1 + 1e-6)
        assert float(factors[i]) == pytest.approx(factor, rel=1e-4)
        if factor == 1.0:  # small examples are left exactly as they were
            assert all(torch.equal(c[i], p[i]) for c, p in zip(clipped, per))
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert 0 < int((factors < 1).sum()) < 12  # both cases occur
    # The DP-SGD gradient without noise: the sum of the clipped loop gradients over the expected size.
    grad = dp_sgd_gradient(
        model,
        LOSS,
        x,
        y,
        clip=clip,
        noise_multiplier=0.0,
        expected_batch_size=10.0,
        generator=torch_generator(0, "s"),
    )
    rows = [clip_update(r, clip)[0] for r in _loop_gradients(model, x, y)]
    loop_sum = [sum(r[j] for r in rows) for j in range(len(per))]
    for a, b in zip(grad, loop_sum):
        torch.testing.assert_close(a, b / 10.0, rtol=1e-4, atol=1e-7)


def test_no_clip_and_zero_noise_leave_the_gradient_unchanged() -> None:
    torch.manual_seed(2)
    model = build_model("mlp", (1, 8, 8), 10)
    x, y = _data(8, seed=2)
    g = torch_generator(0, "nonoise")
    grad = dp_sgd_gradient(
        model, LOSS, x, y, clip=None, noise_multiplier=0.0, expected_batch_size=8.0, generator=g
    )
    per = per_example_gradients(model, LOSS, x, y)
    for a, p in zip(grad, per):
        assert torch.equal(a, p.sum(0) / 8.0)  # no clip factor, no noise term: bit for bit
    # ...and equal (to rounding) to the ordinary batch gradient of the mean loss.
    batch = torch.autograd.grad(LOSS(model(x), y), list(model.parameters()))
    for a, b in zip(grad, batch):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="clip bound is needed"):
        dp_sgd_gradient(
            model, LOSS, x, y, clip=None, noise_multiplier=1.0, expected_batch_size=8.0, generator=g
        )


def test_dp_sgd_noise_has_std_z_clip_over_expected_batch(assert_variance: VarianceCheck) -> None:
    torch.manual_seed(3)
    model = build_model("mlp", (1, 8, 8), 10)
    x, y = _data(6, seed=3)
    z, clip, expected = 1.7, 0.3, 4.0
    kwargs = {"clip": clip, "expected_batch_size": expected}
    noise = []
    for seed in range(12):
        noisy = dp_sgd_gradient(
            model, LOSS, x, y, noise_multiplier=z, generator=torch_generator(seed, "dp"), **kwargs
        )
        clean = dp_sgd_gradient(
            model, LOSS, x, y, noise_multiplier=0.0, generator=torch_generator(seed, "dp"), **kwargs
        )
        noise.append(torch.cat([(a - b).flatten() for a, b in zip(noisy, clean)]))
    assert_variance(torch.cat(noise), z * clip / expected)


def test_poisson_batches_have_rate_q_and_are_reproducible() -> None:
    n, q = 200_000, 0.3
    idx = poisson_batch(n, q, torch_generator(0, "batch", 1))
    assert idx.dtype == torch.int64 and bool((idx[1:] > idx[:-1]).all())
    assert abs(idx.numel() - q * n) < 6 * math.sqrt(n * q * (1 - q))
    assert torch.equal(idx, poisson_batch(n, q, torch_generator(0, "batch", 1)))
    assert not torch.equal(idx, poisson_batch(n, q, torch_generator(0, "batch", 2)))
    assert poisson_batch(50, 0.0, torch_generator(0, "b")).numel() == 0
    assert poisson_batch(50, 1.0, torch_generator(0, "b")).numel() == 50


def test_empty_batch_gives_only_the_noise() -> None:
    model = build_model("mlp", (1, 8, 8), 10)
    x, y = _data(0)
    kwargs = {"clip": 1.0, "expected_batch_size": 5.0, "generator": torch_generator(0, "e")}
    grad = dp_sgd_gradient(model, LOSS, x, y, noise_multiplier=0.0, **kwargs)
    assert all(torch.equal(g, torch.zeros_like(p)) for g, p in zip(grad, model.parameters()))
    noisy = dp_sgd_gradient(model, LOSS, x, y, noise_multiplier=2.0, **kwargs)
    flat = torch.cat([g.flatten() for g in noisy])
    assert float(flat.std()) == pytest.approx(2.0 * 1.0 / 5.0, rel=0.1)


def test_dropout_draws_a_mask_per_example_from_the_generator() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    x, y = _data(1, seed=4)
    x, y = x.repeat(6, 1, 1, 1), y.repeat(6)  # six copies of one example
    before = torch.get_rng_state()
    per = per_example_gradients(model, LOSS, x, y, generator=torch_generator(0, "drop"))
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left as it was
    w = per[0].flatten(1)
    assert not torch.allclose(w[0], w[1])  # different masks for identical examples
    again = per_example_gradients(model, LOSS, x, y, generator=torch_generator(0, "drop"))
    assert all(torch.equal(a, b) for a, b in zip(per, again))
    other = per_example_gradients(model, LOSS, x, y, generator=torch_generator(1, "drop"))
    assert not torch.equal(per[0], other[0])


def test_models_mixing_examples_are_refused_naming_groupnorm() -> None:
    with pytest.raises(ConfigError, match=r"dp\.level=sample.*'resnet'.*BatchNorm.*GroupNorm"):
        check_dpsgd_model(build_model("resnet", (1, 8, 8), 10), "resnet")
    with pytest.raises(ConfigError, match="InstanceNorm2d"):
        check_dpsgd_model(nn.Sequential(nn.InstanceNorm2d(3, track_running_stats=True)))
    check_dpsgd_model(nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.InstanceNorm2d(4)))
    for name in model_names():
        if name != "resnet":
            check_dpsgd_model(build_model(name, (1, 8, 8), 10), name)
