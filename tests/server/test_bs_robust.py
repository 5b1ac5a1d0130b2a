"""The BS with a robust ``server.aggregator``: the rule replaces the mean, per round and across rounds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fedwave.config import load_config
from fedwave.errors import ConfigError
from fedwave.server import BaseStation, ReceivedUpdate


def _bs(aggregator: str, **kw: object) -> BaseStation:
    cfg = SimpleNamespace(
        optimizer="sgd", lr=1.0, momentum=0.0, nesterov=False, beta1=0.9, beta2=0.99, eps=1e-3
    )
    cfg.aggregator = aggregator
    for k, v in kw.items():
        setattr(cfg, k, v)
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    return BaseStation(
        model,
        cfg,
        algorithm="fedavg",
        weighting="samples",
        x_test=torch.zeros(2, 3),
        y_test=torch.zeros(2, dtype=torch.long),
    )


def _like(bs: BaseStation, value: float) -> list[torch.Tensor]:
    return [torch.full_like(p, value) for p in bs.params]


def _step(bs: BaseStation, updates: list[ReceivedUpdate]) -> list[torch.Tensor]:
    before = [p.detach().clone() for p in bs.params]
    bs.aggregate(updates)
    return [p.detach() - b for p, b in zip(bs.params, before)]


@pytest.mark.parametrize("spec", ["median", "trimmed_mean", "krum", "rfa", "centered_clip"])
def test_a_robust_rule_ignores_one_huge_attacker_that_moves_the_mean(spec: str) -> None:
    honest = [ReceivedUpdate(ue, _like(_bs(spec), 0.1 * (1 + ue % 2)), 10) for ue in range(6)]
    attacker = ReceivedUpdate(6, _like(_bs(spec), -50.0), 10)
    robust = _step(_bs(spec), [*honest, attacker])
    mean = _step(_bs("mean"), [*honest, attacker])
    for r, m in zip(robust, mean):
        assert float(r.min()) >= 0.1 - 1e-6 and float(r.max()) <= 0.2 + 1e-6  # inside the honest range
        assert float(m.max()) < -6.0  # the mean is dragged far below it: (0.9 - 50) / 7


def test_robust_rules_weigh_ues_alike_and_mean_by_samples() -> None:
    a, b, c = (
        ReceivedUpdate(i, _like(_bs("median"), v), n) for i, (v, n) in enumerate([(1, 1), (2, 1), (3, 98)])
    )
    med = _step(_bs("median"), [a, b, c])
    mean = _step(_bs("mean"), [a, b, c])
    torch.testing.assert_close(med[0], torch.full_like(med[0], 2.0))  # the median UE, not the big one
    torch.testing.assert_close(mean[0], torch.full_like(mean[0], (1 + 2 + 3 * 98) / 100))


def test_staleness_factors_scale_each_update_before_the_rule() -> None:
    ups = [ReceivedUpdate(i, _like(_bs("median"), 1.0), 5, weight=0.25) for i in range(5)]
    step = _step(_bs("median"), ups)
    torch.testing.assert_close(step[0], torch.full_like(step[0], 0.25))


def test_too_few_updates_leave_the_model_and_say_why() -> None:
    bs = _bs("krum:1")  # needs 2f + 3 = 5
    before = [p.detach().clone() for p in bs.params]
    outcome = bs.aggregate([ReceivedUpdate(i, _like(bs, 1.0), 5) for i in range(4)])
    assert outcome.unaggregated == [0, 1, 2, 3] and outcome.aggregated == []
    assert "needs at least 5" in outcome.too_few
    for p, b in zip(bs.params, before):
        assert torch.equal(p.detach(), b)
    assert bs.version == 1  # the round still counts


def test_centered_clip_starts_each_round_from_the_last_aggregate_and_checkpoints_it() -> None:
    bs = _bs("centered_clip:0.5:1")
    ups = [ReceivedUpdate(i, _like(bs, 4.0), 5) for i in range(5)]
    first = _step(bs, ups)  # from 0, each difference (norm 4 sqrt(8)) is clipped to 0.5
    norm = float(torch.cat([t.reshape(-1) for t in first]).norm())
    assert norm == pytest.approx(0.5, rel=1e-5)
    saved = bs.state_dict()
    second = _step(bs, ups)  # from the previous aggregate (norm 0.5): another 0.5 towards 4
    assert float(torch.cat([t.reshape(-1) for t in second]).norm()) == pytest.approx(1.0, rel=1e-5)
    fresh = _bs("centered_clip:0.5:1")
    fresh.load_state_dict(saved)
    again = _step(fresh, ups)
    for x, y in zip(second, again):
        assert torch.equal(x, y)  # the centre travels with the checkpoint
    restarted = _step(_bs("centered_clip:0.5:1"), ups)  # no centre: from 0 again, a step of 0.5
    assert float(torch.cat([t.reshape(-1) for t in restarted]).norm()) == pytest.approx(0.5, rel=1e-5)


def test_config_checks_the_aggregator_before_any_run() -> None:
    assert (
        load_config(overrides=["server.aggregator=Trimmed_Mean:0.1"]).server.aggregator == "trimmed_mean:0.1"
    )
    with pytest.raises(ConfigError, match=r"server\.aggregator.*unknown aggregator 'avg'"):
        load_config(overrides=["server.aggregator=avg"])
    with pytest.raises(ConfigError, match=r"needs at least 9 updates.*at most 5"):
        load_config(overrides=["server.aggregator=krum:3", "fl.num_ues=5"])
    with pytest.raises(ConfigError, match=r"needs at least 13.*at most 10"):  # async: one buffer
        load_config(overrides=["server.aggregator=krum:5", "wireless.policy.name=async"])
    with pytest.raises(ConfigError, match=r"dp\.level 'client'"):
        load_config(
            overrides=[
                "server.aggregator=median",
                "dp.level=client",
                "dp.noise_multiplier=1",
                "fl.sampling=poisson",
            ]
        )


def test_each_rule_states_its_minimum_and_the_cli_lists_them(capsys: pytest.CaptureFixture[str]) -> None:
    from fedwave.cli import main
    from fedwave.server.aggregators import USAGE, get_aggregator

    assert get_aggregator("krum:2").min_updates == 7  # n >= 2f + 3
    assert get_aggregator("multi_krum:1:6").min_updates == 6  # keeps m = 6 > 2f + 3 = 5
    assert get_aggregator("median").min_updates == 1
    assert main(["aggregators"]) == 0
    out = capsys.readouterr().out
    assert all(usage in out for usage in USAGE.values())
