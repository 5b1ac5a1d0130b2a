"""The contract every aggregation rule meets, and each rule's defining property."""

from __future__ import annotations

import math

import pytest
import torch

from fedwave.errors import ConfigError
from fedwave.server.aggregators import USAGE, TooFewUpdates, get_aggregator

SPECS = [
    "mean",
    "median",
    "trimmed_mean",
    "trimmed_mean:0.1",
    "krum",
    "krum:1",
    "multi_krum",
    "multi_krum:1:3",
    "rfa",
    "centered_clip",
    "centered_clip:0.5:3",
]


def _updates(
    n: int, seed: int = 0, shapes: tuple[tuple[int, ...], ...] = ((3, 4), (5,))
) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g) for s in shapes] for _ in range(n)]


@pytest.mark.parametrize("spec", [s for s in SPECS if s != "centered_clip:0.5:3"])
def test_identical_updates_give_that_update(spec: str) -> None:
    one = _updates(1)[0]
    out = get_aggregator(spec).aggregate([one] * 9, center=[torch.zeros_like(t) for t in one])
    for a, b in zip(out, one):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("spec", SPECS)
def test_permutation_invariant_and_shapes_kept(spec: str) -> None:
    ups = _updates(9, seed=3)
    agg = get_aggregator(spec)
    a = agg.aggregate(ups)
    perm = [ups[i] for i in torch.randperm(9, generator=torch.Generator().manual_seed(1)).tolist()]
    b = agg.aggregate(perm)
    for x, y, t in zip(a, b, ups[0]):
        assert x.shape == t.shape and x.dtype == t.dtype
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


def test_mean_is_the_weighted_mean() -> None:
    ups = [[torch.tensor([1.0, 2.0])], [torch.tensor([3.0, 6.0])]]
    out = get_aggregator("mean").aggregate(ups, weights=[1.0, 3.0])
    torch.testing.assert_close(out[0], torch.tensor([2.5, 5.0]))


def test_median_and_trimmed_mean_by_hand() -> None:
    col = [[torch.tensor([v])] for v in (1.0, 2.0, 3.0, 100.0, -50.0)]
    assert float(get_aggregator("median").aggregate(col)[0]) == 2.0
    assert float(get_aggregator("median").aggregate(col[:4])[0]) == 2.5  # mean of the two middle values
    # beta 0.2 of 5 drops one from each end: mean of (1, 2, 3)
    assert float(get_aggregator("trimmed_mean:0.2").aggregate(col)[0]) == 2.0


def test_krum_picks_the_planted_honest_cluster() -> None:
    g = torch.Generator().manual_seed(5)
    honest = [[torch.ones(10) + 0.01 * torch.randn(10, generator=g)] for _ in range(7)]
    attackers = [[torch.full((10,), -20.0) + torch.randn(10, generator=g)] for _ in range(2)]
    for spec in ("krum:2", "multi_krum:2"):
        out = get_aggregator(spec).aggregate(attackers + honest)[0]
        assert float((out - 1).abs().max()) < 0.05, spec


def test_robust_rules_resist_a_minority_that_mean_does_not() -> None:
    honest = _updates(8, seed=7, shapes=((20,),))
    truth = torch.stack([u[0] for u in honest]).mean(0)
    bad = [[torch.full((20,), 1e3)] for _ in range(2)]
    err = {s: float((get_aggregator(s).aggregate(honest + bad)[0] - truth).norm()) for s in SPECS}
    assert err["mean"] > 100
    for spec in ("median", "trimmed_mean", "krum", "multi_krum", "rfa"):
        assert err[spec] < 5, (spec, err[spec])


def test_geometric_median_minimises_the_sum_of_distances() -> None:
    ups = _updates(7, seed=11, shapes=((6,),))
    x = torch.stack([u[0] for u in ups]).double()
    z = get_aggregator("rfa").aggregate(ups)[0].double()
    cost = float(torch.linalg.vector_norm(x - z, dim=1).sum())
    g = torch.Generator().manual_seed(2)
    for _ in range(50):  # no nearby point does better
        y = z + 0.01 * torch.randn(6, generator=g, dtype=torch.float64)
        assert float(torch.linalg.vector_norm(x - y, dim=1).sum()) >= cost - 1e-9


def test_centered_clip_moves_each_update_by_at_most_tau() -> None:
    ups = [[torch.tensor([10.0, 0.0])], [torch.tensor([0.0, 0.1])]]
    out = get_aggregator("centered_clip:1:1").aggregate(ups, center=[torch.zeros(2)])[0]
    # (clip to 1 of (10, 0)) + (0, 0.1), halved
    torch.testing.assert_close(out, torch.tensor([0.5, 0.05]))


@pytest.mark.parametrize("spec,n", [("krum:2", 6), ("krum:1", 4), ("multi_krum:1:9", 5)])
def test_too_few_updates_is_a_clear_error(spec: str, n: int) -> None:
    with pytest.raises(TooFewUpdates, match=r"needs|keeps"):
        get_aggregator(spec).aggregate(_updates(n))


@pytest.mark.parametrize("spec", ["nope", "median:1", "trimmed_mean:0.6", "krum:x", "rfa:0", "mean:2"])
def test_bad_specs_name_the_valid_ones(spec: str) -> None:
    with pytest.raises(ConfigError):
        get_aggregator(spec)
    assert set(USAGE) == {"mean", "median", "trimmed_mean", "krum", "multi_krum", "rfa", "centered_clip"}


def test_default_f_is_a_fifth_rounded_up() -> None:
    from fedwave.server.aggregators import default_f

    assert [default_f(n) for n in (1, 5, 10, 11)] == [1, 1, 2, 3]
    assert math.isclose(0.2 * 10, default_f(10))
