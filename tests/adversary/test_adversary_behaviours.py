"""Every misbehaviour does what its definition says; who misbehaves is a pure function of config and seed."""

from __future__ import annotations

import math

import pytest
import torch

from fedwave.adversary import (
    BEHAVIOURS,
    AdversaryConfig,
    BehaviourContext,
    FaultsConfig,
    MisbehaviourPlan,
    alie_z,
)
from fedwave.errors import ConfigError


def _ctx(**kw: object) -> BehaviourContext:
    base: dict = {"round": 0, "ue": 1, "rng": torch.Generator().manual_seed(0)}
    base.update(kw)
    return BehaviourContext(**base)  # type: ignore[arg-type]


U = [torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])]
HONEST = [
    [torch.tensor([1.0, 2.0]), torch.tensor([[0.0]])],
    [torch.tensor([3.0, 6.0]), torch.tensor([[2.0]])],
]


def test_sign_flip_scale_and_gaussian() -> None:
    out = BEHAVIOURS["sign_flip"].apply(U, _ctx())
    assert [t.tolist() for t in out] == [[-1.0, 2.0], [[-3.0]]]
    out = BEHAVIOURS["sign_flip"].apply(U, _ctx(params={"factor": 4.0}))
    assert out[0].tolist() == [-4.0, 8.0]
    assert BEHAVIOURS["scale"].apply(U, _ctx())[1].tolist() == [[30.0]]  # default factor 10
    noise = BEHAVIOURS["gaussian"].apply([torch.zeros(20000)], _ctx(params={"sigma": 3.0}))[0]
    assert abs(float(noise.std()) - 3.0) < 4 * 3.0 / math.sqrt(2 * 20000)  # sample std's sd ~ sigma/sqrt(2n)
    again = BEHAVIOURS["gaussian"].apply([torch.zeros(20000)], _ctx(params={"sigma": 3.0}))[0]
    assert torch.equal(noise, again)  # from the behaviour's own generator


def test_label_flip_poisons_the_labels_only() -> None:
    b = BEHAVIOURS["label_flip"]
    assert b.poison is not None
    x = torch.randn(4, 3)
    x2, y2 = b.poison(x, torch.tensor([0, 1, 9, 4]), 10)
    assert torch.equal(x2, x) and y2.tolist() == [9, 8, 0, 5]
    assert b.apply(U, _ctx()) is U  # the update itself is the honest training's on poisoned data


def test_alie_sends_mean_minus_z_std_of_the_honest_updates() -> None:
    out = BEHAVIOURS["alie"].apply(U, _ctx(honest=HONEST, params={"z": 1.5}))
    # per coordinate: mean (2, 4), population std (1, 2); (1,); mean 1, std 1
    assert out[0].tolist() == [2 - 1.5 * 1, 4 - 1.5 * 2]
    assert out[1].tolist() == [[1 - 1.5 * 1]]
    # z_max of the paper for n = 20, f = 4: s = floor(11) - 4 = 7, z = Phi^-1(13/20)
    assert alie_z(20, 4) == pytest.approx(0.38532, abs=1e-4)
    default = BEHAVIOURS["alie"].apply(U, _ctx(honest=HONEST, attackers=1))
    z = alie_z(2, 1)
    assert default[0].tolist() == pytest.approx([2 - z, 4 - 2 * z])


def test_ipm_sends_minus_epsilon_times_the_mean() -> None:
    out = BEHAVIOURS["ipm"].apply(U, _ctx(honest=HONEST, params={"epsilon": 0.5}))
    assert out[0].tolist() == [-1.0, -2.0] and out[1].tolist() == [[-0.5]]


def test_omniscient_attacks_need_the_honest_updates() -> None:
    with pytest.raises(ValueError, match="honest updates"):
        BEHAVIOURS["ipm"].apply(U, _ctx())


def test_plan_draws_disjoint_malicious_and_faulty_ues_reproducibly() -> None:
    faults = FaultsConfig(kind="nan", fraction=0.3)
    adv = AdversaryConfig(attack="sign_flip", fraction=0.2)
    a = MisbehaviourPlan(faults, adv, 20, seed=4)
    b = MisbehaviourPlan(faults, adv, 20, seed=4)
    assert a.malicious == b.malicious and a.faulty == b.faulty
    assert (len(a.malicious), len(a.faulty)) == (4, 6) and not (a.malicious & a.faulty)
    ue = min(a.malicious)
    plan = a.behaviour_of(3, ue)
    assert plan is not None and plan[0].name == "sign_flip"
    honest = next(u for u in range(20) if u not in a.malicious | a.faulty)
    assert a.behaviour_of(3, honest) is None
    with pytest.raises(ConfigError, match="both"):
        MisbehaviourPlan(FaultsConfig(kind="nan", ues=[1, 2]), AdversaryConfig(attack="scale", ues=[2]), 5, 0)


def test_fault_probability_strikes_at_that_rate() -> None:
    plan = MisbehaviourPlan(FaultsConfig(kind="zero", ues=[0], probability=0.3), None, 3, seed=1)
    hits = sum(plan.behaviour_of(r, 0) is not None for r in range(4000))
    assert abs(hits / 4000 - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000)


def test_unknown_attack_and_kind_are_config_errors() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown attack"):
        AdversaryConfig(attack="nope")
    with pytest.raises(ValidationError, match="unknown fault kind"):
        FaultsConfig(kind="sign_flip")
