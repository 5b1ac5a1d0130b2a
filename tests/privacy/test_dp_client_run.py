"""Client-level DP-FedAvg in real runs: epsilon per round, clipping, noise, drops, resume, stop, empty rounds.

Epsilons are checked against Google's dp-accounting RDP accountant composed here independently (fedwave's
default accountant is Opacus's RDP), so a wrong q, z or number of steps in the run's accounting fails.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from tests.privacy.conftest import check_variance

import fedwave.server.bs as bs_module
from fedwave.cli import main
from fedwave.config import load_config
from fedwave.errors import ConfigError
from fedwave.fl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fedwave.fl.run import build_simulation, run
from fedwave.privacy.dp.accountant import RDP_ORDERS
from fedwave.privacy.dp.mechanisms import global_l2_norm
from fedwave.privacy.dp.plan import last_round_within, plan_privacy

SMALL = ["data.max_train=400", "fl.num_ues=6", "model.name=mlp"]
POISSON = ["fl.sampling=poisson", "fl.fraction=0.5"]
CLIENT = [*SMALL, *POISSON, "dp.level=client"]


def google_epsilon(steps: Sequence[tuple[float, float]], delta: float = 1e-5) -> float:
    """Epsilon of Poisson-sampled Gaussian steps (z, q), composed in order by dp-accounting's RDP."""
    acc = rdp_privacy_accountant.RdpAccountant(orders=list(RDP_ORDERS))
    for z, q in steps:
        acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)))
    return float(acc.get_epsilon(delta))


def test_fedwave_run_writes_a_finite_increasing_epsilon_per_round(tmp_path: Path) -> None:
    """The issue's command: rounds.csv holds epsilon after each of the 10 rounds (q 0.25, z 1)."""
    out = tmp_path / "run"
    args = ["-o", "dp.level=client", "-o", "dp.noise_multiplier=1.0", "-o", "dp.clip=1.0"]
    args += ["-o", "fl.sampling=poisson", "-o", "fl.fraction=0.25", "-o", "fl.rounds=10"]
    assert main(["run", *args, "--out", str(out), "-q"]) == 0
    with (out / "rounds.csv").open() as f:
        rows = list(csv.DictReader(f))
    eps = [float(r["epsilon"]) for r in rows]
    assert len(eps) == 10 and all(math.isfinite(e) for e in eps)
    assert all(a < b for a, b in itertools.pairwise(eps))
    for r in (1, 5, 10):
        assert eps[r - 1] == pytest.approx(google_epsilon([(1.0, 0.25)] * r), rel=0.01)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["privacy"]["epsilon"] == eps[-1] and summary["privacy"]["delta"] == 1e-5
    assert yaml.safe_load((out / "config.yaml").read_text())["dp"]["noise_multiplier"] == 1.0


def _plain_fields(record: Any) -> dict[str, Any]:
    d = record.as_dict()
    return {k: v for k, v in d.items() if k != "epsilon" and not k.startswith("extra_dp_")}


@pytest.mark.parametrize("placement", ["central", "distributed"])
def test_z0_without_clipping_equals_the_plain_run_bit_for_bit(placement: str) -> None:
    """Exact conditions: the same Poisson sampling with q = 1 (so q N equals the number of updates
    aggregated), sync rounds without losses, fl.weighting=uniform, dp.clip=null and z = 0."""
    base = [*SMALL, "fl.rounds=3", "fl.sampling=poisson", "fl.fraction=1.0", "fl.weighting=uniform"]
    plain = run(load_config(None, base))
    dp = ["dp.level=client", f"dp.placement={placement}", "dp.noise_multiplier=0"]
    private = run(load_config(None, [*base, *dp, "dp.clip=null"]))
    assert plain.summary["model_sha256"] == private.summary["model_sha256"]
    assert [_plain_fields(r) for r in plain.records] == [_plain_fields(r) for r in private.records]
    assert all(r.epsilon == math.inf for r in private.records)  # z = 0 and no clipping: no guarantee
    # The DP path is really taken: with a clip bound the same run differs.
    clipped = run(load_config(None, [*base, *dp, "dp.clip=0.05"]))
    assert clipped.summary["model_sha256"] != plain.summary["model_sha256"]


def _spy_bs(monkeypatch: pytest.MonkeyPatch) -> list[list[list[torch.Tensor]]]:
    """Record the updates the BS sums in each DP aggregation (after its clip), round by round."""
    summed: list[list[list[torch.Tensor]]] = []
    real = bs_module.dp_mean

    def spy(updates: Any, dp: Any, shapes: Any, generator: Any) -> Any:
        summed.append([list(u) for u in updates])
        return real(updates, dp, shapes, generator)

    monkeypatch.setattr(bs_module, "dp_mean", spy)
    return summed


@pytest.mark.parametrize("codec", ["qsgd:4", "fp32"])
def test_every_update_the_bs_aggregates_is_within_the_clip_bound(
    monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """A faulty UE sends its clipped update times 1e3, and a coarse stochastic quantizer raises norms:
    the BS clips every decoded update to S again, so every summand has norm <= S."""
    clip = 0.3
    summed = _spy_bs(monkeypatch)
    faults = ["faults.kind=huge", "faults.scale=1000", "faults.ues=[1]", "faults.probability=1"]
    dp = [f"dp.clip={clip}", "dp.noise_multiplier=0.5"]
    cfg = load_config(None, [*CLIENT, "fl.rounds=4", f"codec={codec}", *dp, *faults])
    result = run(cfg)
    norms = [global_l2_norm(u) for rnd in summed for u in rnd]
    assert len(summed) == 4 and len(norms) >= 6
    assert max(norms) <= clip
    assert sum(r.extra["dp_clipped_bs"] for r in result.records) >= 1  # the BS clip did act
    assert any(e.behaviour == "huge" and e.status == "arrived" for e in result.events)


def test_the_bs_adds_noise_of_std_z_times_clip_every_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """Central noise drawn in a real run has std z S per coordinate (chi-square test over the model),
    also in rounds where no UE was selected."""
    import fedwave.server.dp as dp_module

    draws: list[torch.Tensor] = []
    real = dp_module.gaussian_noise

    def spy(shapes: Any, std: float, generator: torch.Generator) -> list[torch.Tensor]:
        out = real(shapes, std, generator)
        draws.append(torch.cat([t.flatten() for t in out]))
        return out

    monkeypatch.setattr(dp_module, "gaussian_noise", spy)
    overrides = [*SMALL, "fl.rounds=3", "fl.sampling=poisson", "fl.fraction=0.1", "dp.level=client"]
    result = run(load_config(None, [*overrides, "dp.clip=0.7", "dp.noise_multiplier=1.5"]))
    assert len(draws) == 3 and any(r.selected == 0 for r in result.records)
    for d in draws:
        check_variance(d, 1.5 * 0.7)


def test_dropped_ues_under_distributed_noise_lower_the_noise_and_raise_epsilon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deadline drops UEs: the BS's sum carries (z S)^2 m / planned per coordinate (measured, with local
    lr 0 so each update is its noise share alone), the round is accounted at z sqrt(m / planned), and the
    run ends at a larger epsilon than the same run with every share delivered."""
    z, clip = 2.0, 0.5
    common = [*CLIENT, "fl.rounds=6", "fl.lr=0", "dp.placement=distributed", f"dp.noise_multiplier={z}"]
    common += [f"dp.clip={clip}", "wireless.policy.name=deadline"]
    summed = _spy_bs(monkeypatch)
    short = run(load_config(None, [*common, "wireless.policy.deadline_s=0.02"]))
    full = run(load_config(None, [*common, "wireless.policy.deadline_s=10"]))
    rounds = short.records
    assert [r.selected for r in rounds] == [r.selected for r in full.records]
    partial = [r for r in rounds if 0 < r.extra["dp_shares_delivered"] < r.extra["dp_shares_planned"]]
    assert partial, "the deadline must drop some but not all UEs in some round"
    steps = []
    for r, updates in zip(rounds, summed[: len(rounds)]):
        m, p = r.extra["dp_shares_delivered"], r.extra["dp_shares_planned"]
        assert m == r.arrived == len(updates)
        if m == 0:
            assert math.isnan(r.extra["dp_z"])
            continue
        assert r.extra["dp_z"] == pytest.approx(z * math.sqrt(m / p), rel=1e-12)
        steps.append((z * math.sqrt(m / p), 0.5))
        total = torch.stack([torch.cat([t.flatten() for t in u]) for u in updates]).sum(0)
        check_variance(total, z * clip * math.sqrt(m / p))
        assert r.epsilon == pytest.approx(google_epsilon(steps), rel=0.01)
    assert all(r.extra["dp_z"] == z for r in full.records if r.selected)
    assert short.records[-1].epsilon > full.records[-1].epsilon
    assert full.records[-1].epsilon == pytest.approx(
        google_epsilon([(z, 0.5)] * sum(1 for r in full.records if r.selected)), rel=0.01
    )


def test_a_faulty_ue_does_not_count_as_a_delivered_share() -> None:
    """A UE that zeroes its noised update (a fault, after its honest noise) delivers no share."""
    faults = ["faults.kind=zero", "faults.ues=[0,3]", "faults.probability=1"]
    dp = ["dp.placement=distributed", "dp.noise_multiplier=1"]
    cfg = load_config(None, [*CLIENT, "fl.rounds=4", *dp, *faults])
    result = run(cfg)
    for r in result.records:
        faulty = sum(1 for e in result.events if e.round == r.round and e.behaviour == "zero")
        assert r.extra["dp_shares_delivered"] == r.arrived - faulty
    assert any(e.behaviour == "zero" and e.status == "arrived" for e in result.events)


def test_a_resumed_dp_run_gives_the_same_epsilons_bit_for_bit() -> None:
    deadline = ["wireless.policy.name=deadline", "wireless.policy.deadline_s=0.02"]
    cfg = load_config(
        None, [*CLIENT, "fl.rounds=5", "dp.placement=distributed", "dp.noise_multiplier=1.2", *deadline]
    )
    whole = run(cfg)
    first = build_simulation(cfg)
    first.run_rounds(2)
    blob = save_checkpoint(first, t_now=first.t_now, next_round=first.next_round)
    second = build_simulation(cfg)
    load_checkpoint(second, blob)
    second.run_rounds(3)
    resumed = [r.epsilon for r in first.driver.records] + [r.epsilon for r in second.driver.records]
    assert resumed == [r.epsilon for r in whole.records]
    # A checkpoint of the same run without DP has no ledger to restore: refused, not silently reset.
    plain = build_simulation(load_config(None, [*SMALL, "fl.rounds=5", *POISSON]))
    plain.run_rounds(1)
    with pytest.raises(CheckpointError, match="no privacy ledger"):
        load_checkpoint(build_simulation(cfg), save_checkpoint(plain, t_now=plain.t_now, next_round=1))


def test_stop_at_epsilon_ends_the_run_before_the_round_that_would_exceed_it(tmp_path: Path) -> None:
    overrides = [*CLIENT, "fl.rounds=30", "dp.noise_multiplier=1.0", "dp.stop_at_epsilon=6"]
    cfg = load_config(None, overrides)
    result = run(cfg, run_dir=tmp_path / "run")
    expected = last_round_within(plan_privacy(cfg), 6.0)
    assert 1 < expected < 30
    assert len(result.records) == expected
    assert result.records[-1].epsilon <= 6.0
    assert google_epsilon([(1.0, 0.5)] * (expected + 1)) > 6.0
    privacy = json.loads((tmp_path / "run" / "summary.json").read_text())["privacy"]
    assert privacy["stopped_at_epsilon"] is True and "stopped at epsilon" in privacy["stop_reason"]
    with pytest.raises(ConfigError, match=r"dp\.stop_at_epsilon=0\.01 is below the epsilon of one round"):
        build_simulation(load_config(None, [*CLIENT, "dp.noise_multiplier=1.0", "dp.stop_at_epsilon=0.01"]))


def test_empty_poisson_rounds_are_recorded_and_still_release_noise() -> None:
    """q N = 0.3: most rounds select nobody. They are recorded (selected 0) and, under central DP, still
    take a noise-only step and an accountant step; a run without DP just keeps its model."""
    few = [*SMALL, "fl.rounds=6", "fl.sampling=poisson", "fl.fraction=0.05", "server.max_idle_rounds=1"]
    plain = run(load_config(None, few))
    empty = [r for r in plain.records if r.selected == 0]
    assert len(empty) >= 3 and all(r.extra["step_norm"] == 0.0 for r in empty)
    private = run(load_config(None, [*few, "dp.level=client", "dp.noise_multiplier=1.0"]))
    assert [r.selected for r in private.records] == [r.selected for r in plain.records]
    assert all(r.extra["step_norm"] > 0 for r in private.records)
    assert private.records[-1].epsilon == pytest.approx(google_epsilon([(1.0, 0.05)] * 6), rel=0.01)


def test_a_rolled_back_round_still_costs_privacy() -> None:
    """Every noised step is rolled back (divergence_factor tiny): the model stays, epsilon still grows."""
    server = ["server.divergence_factor=1e-6", "server.max_idle_rounds=null"]
    cfg = load_config(None, [*CLIENT, "fl.rounds=3", "dp.noise_multiplier=1.0", *server])
    sim = build_simulation(cfg)
    before = [p.detach().clone() for p in sim.driver.bs.model.parameters()]
    sim.run_rounds(3)
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, sim.driver.bs.model.parameters()))
    assert sum(r.rolled_back for r in sim.driver.records) == sum(r.selected for r in sim.driver.records) > 0
    eps = [r.epsilon for r in sim.driver.records]
    assert eps[-1] == pytest.approx(google_epsilon([(1.0, 0.5)] * 3), rel=0.01)
    assert all(a < b for a, b in itertools.pairwise(eps))


def test_poisson_selection_joins_each_ue_independently_with_probability_q() -> None:
    """3000 rounds of 6 UEs at q = 0.3: each UE joins Binomial(3000, 0.3) times (mean 900, sd 25), a
    round is empty with probability 0.7^6 (sd of the count 17.6) and may exceed round(q N) = 2."""
    sim = build_simulation(load_config(None, [*SMALL, "fl.sampling=poisson", "fl.fraction=0.3"]))
    rounds = [sim.driver.select(r, range(6), 6) for r in range(3000)]
    for ue in range(6):
        assert abs(sum(ue in s for s in rounds) - 900) < 5 * 25
    empty = sum(not s for s in rounds)
    assert abs(empty - 3000 * 0.7**6) < 5 * 17.6
    assert max(len(s) for s in rounds) > 2


def test_a_diverged_ue_sends_zeros_and_still_delivers_its_noise_share() -> None:
    """lr 1e38 makes every local update non-finite. With a clip bound each UE sends zeros (norm 0 <= S)
    plus its share, so nothing is rejected and every share counts; without one, NaN is rejected."""
    dp = ["dp.placement=distributed", "dp.noise_multiplier=1", "fl.lr=1e38", "server.max_idle_rounds=null"]
    result = run(load_config(None, [*CLIENT, "fl.rounds=2", *dp]))
    assert sum(r.selected for r in result.records) > 0
    for r in result.records:
        assert r.rejected == 0 and r.extra["dp_zeroed_ue"] == r.selected == r.arrived
        assert r.extra["dp_shares_delivered"] == r.selected
    unclipped = run(
        load_config(None, [*CLIENT, "fl.rounds=2", *dp[2:], "dp.clip=null", "dp.noise_multiplier=0"])
    )
    assert all(r.rejected == r.selected for r in unclipped.records)


def test_a_target_epsilon_run_writes_the_calibrated_z_and_ends_at_the_target(tmp_path: Path) -> None:
    cfg = load_config(None, [*CLIENT, "fl.rounds=5", "dp.target_epsilon=8"])
    result = run(cfg, run_dir=tmp_path / "run")
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["dp"]
    z = written["noise_multiplier"]
    assert written["target_epsilon"] is None and 0 < z < 10
    assert result.config.dp.noise_multiplier == z  # the resolved config is the run's config
    privacy = json.loads((tmp_path / "run" / "summary.json").read_text())["privacy"]
    assert privacy["target_epsilon"] == 8 and privacy["noise_multiplier"] == z
    assert 8 * 0.99 <= result.records[-1].epsilon <= 8.0
    assert google_epsilon([(z, 0.5)] * 5) == pytest.approx(8.0, rel=0.01)
    load_config(tmp_path / "run" / "config.yaml")  # the written config is valid as it stands
