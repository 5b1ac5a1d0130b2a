"""The BS's DP-FedAvg aggregation (fedwave.server.dp through BaseStation): hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from tests.privacy.conftest import check_variance
from torch import nn

from fedwave.config import ServerConfig
from fedwave.server import BaseStation, ReceivedUpdate
from fedwave.server.dp import DPAggregation


def _bs(dp: DPAggregation, **server: object) -> BaseStation:
    torch.manual_seed(0)
    model = nn.Linear(50, 40)
    return BaseStation(
        model,
        ServerConfig(**server),
        algorithm="fedavg",
        weighting="samples",
        x_test=torch.zeros(2, 50),
        y_test=torch.zeros(2, dtype=torch.long),
        dp=dp,
    )


def _const(bs: BaseStation, value: float) -> list[torch.Tensor]:
    return [torch.full_like(p, value) for p in bs.params]


def _change(bs: BaseStation, before: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach() - b for p, b in zip(bs.params, before)]


def test_the_sum_is_divided_by_the_fixed_denominator_with_weights_one() -> None:
    """Updates of 1 and 3 everywhere, q N = 4: the model moves by (1 + 3) / 4 = 1 (not by their mean 2),
    whatever the sample counts (fl.weighting does not apply)."""
    bs = _bs(DPAggregation(clip=None, noise_std=0.0, denominator=4.0))
    before = bs.parameters_snapshot()
    bs.aggregate([ReceivedUpdate(0, _const(bs, 1.0), 1), ReceivedUpdate(1, _const(bs, 3.0), 100)])
    for d in _change(bs, before):
        assert torch.allclose(d, torch.ones_like(d), atol=1e-6)


def test_each_decoded_update_is_clipped_to_s_then_norm_bounded() -> None:
    bs = _bs(DPAggregation(clip=1.0, noise_std=0.0, denominator=2.0))
    before = bs.parameters_snapshot()
    out = bs.aggregate([ReceivedUpdate(0, _const(bs, 10.0), 5), ReceivedUpdate(1, _const(bs, 1e-4), 5)])
    assert out.dp_clipped == [0] and out.aggregated == [0, 1]
    norm = math.sqrt(sum(float((d.double() ** 2).sum()) for d in _change(bs, before)))
    small = 1e-4 * math.sqrt(sum(p.numel() for p in bs.params))
    assert norm == pytest.approx((1.0 + small) / 2.0, rel=1e-4)  # the big one counts with norm 1, not 10
    bounded = _bs(DPAggregation(clip=1.0, noise_std=0.0, denominator=1.0), norm_bound=0.25)
    before = bounded.parameters_snapshot()
    out = bounded.aggregate([ReceivedUpdate(3, _const(bounded, 10.0), 5)])
    assert out.dp_clipped == [3] and out.clipped == [3]
    norm = math.sqrt(sum(float((d.double() ** 2).sum()) for d in _change(bounded, before)))
    assert norm == pytest.approx(0.25, rel=1e-4)


def test_central_noise_is_added_even_when_nothing_arrived() -> None:
    """An empty round still releases a noised model: its change is N(0, (z S)^2) / (q N) per weight."""
    std, denom = 0.8, 2.5
    bs = _bs(DPAggregation(clip=1.0, noise_std=std, denominator=denom), divergence_factor=None)
    before = bs.parameters_snapshot()
    out = bs.aggregate([], torch.Generator().manual_seed(1))
    assert out.aggregated == [] and out.dp_noise_std == std
    check_variance(torch.cat([d.flatten() for d in _change(bs, before)]), std / denom)
    quiet = _bs(DPAggregation(clip=None, noise_std=0.0, denominator=denom))
    before = quiet.parameters_snapshot()
    quiet.aggregate([])
    assert all(torch.equal(d, torch.zeros_like(d)) for d in _change(quiet, before))


def test_non_finite_updates_are_rejected_on_the_dp_path() -> None:
    bs = _bs(DPAggregation(clip=1.0, noise_std=0.0, denominator=1.0))
    before = bs.parameters_snapshot()
    out = bs.aggregate([ReceivedUpdate(0, _const(bs, math.nan), 5), ReceivedUpdate(1, _const(bs, 0.001), 5)])
    assert out.rejected == [0] and out.aggregated == [1]
    assert all(torch.allclose(d, torch.full_like(d, 0.001), atol=1e-7) for d in _change(bs, before))
    with pytest.raises(ValueError, match="q N must be > 0"):
        DPAggregation(clip=1.0, noise_std=0.0, denominator=0.0)
