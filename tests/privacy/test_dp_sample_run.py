"""Sample-level DP-SGD inside local training: the DP-SGD user and the per-UE accounting of a real run."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from tests.privacy.conftest import check_variance
from torch import nn

import fedwave.users.dpsgd as dpsgd_module
from fedwave.config import load_config
from fedwave.fl.run import run
from fedwave.privacy.dp.accountant import RDP_ORDERS
from fedwave.privacy.dp.mechanisms import global_l2_norm
from fedwave.privacy.dp.plan import ue_sizes_for
from fedwave.users import UserConfig, make_setup
from fedwave.users.dpsgd import UserDPSGD

SMALL = ["data.max_train=400", "fl.num_ues=6", "model.name=mlp"]
DEADLINE = ["wireless.policy.name=deadline", "wireless.policy.deadline_s=0.008", "data.lognormal_sigma=0.8"]


def _user(n: int, **dp: Any) -> UserDPSGD:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x = torch.randn(n, 1, 8, 8)
    y = torch.arange(n) % 10
    cfg = UserConfig(user_type="local_update", local_learning_rate=0.1)
    return UserDPSGD(model, nn.CrossEntropyLoss(), x, y, cfg, make_setup(), **dp)


def _payload(user: UserDPSGD) -> dict[str, Any]:
    return {"parameters": [p.detach().clone() for p in user.model.parameters()], "buffers": None}


def test_fedsgd_shares_the_mean_gradient_clipped_and_noised() -> None:
    """q = 1, one step: with z = 0 and no clip it is the batch's mean gradient; with clip C every
    example's gradient is clipped (the mean's norm <= C); z adds N(0, (z C / n)^2) per coordinate."""
    n = 40
    common = {"batch_size": 10, "local_epochs": 1, "algorithm": "fedsgd"}
    plain = _user(n, clip=None, noise_multiplier=0.0, **common)
    payload = _payload(plain)
    shared, _ = plain.compute_local_updates(payload, rng=torch.Generator().manual_seed(0))
    loss = nn.CrossEntropyLoss()(plain.model(plain.inputs), plain.labels)
    exact = torch.autograd.grad(loss, list(plain.model.parameters()))
    for g, e in zip(shared["gradients"], exact):
        assert torch.allclose(g, e, rtol=1e-4, atol=1e-6)
    c = 0.05
    clipped = _user(n, clip=c, noise_multiplier=0.0, **common)
    quiet, _ = clipped.compute_local_updates(payload, rng=torch.Generator().manual_seed(0))
    assert global_l2_norm(quiet["gradients"]) <= c
    assert global_l2_norm(exact) > 2 * c  # the clip did act
    noisy_user = _user(n, clip=c, noise_multiplier=3.0, **common)
    noisy, _ = noisy_user.compute_local_updates(payload, rng=torch.Generator().manual_seed(0))
    diff = torch.cat([(a - b).flatten() for a, b in zip(noisy["gradients"], quiet["gradients"])])
    check_variance(diff, 3.0 * c / n)


def test_fedavg_takes_the_planned_poisson_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """E ceil(n / B) steps on Poisson batches of expected size B (q = B / n), divided by B."""
    calls: list[tuple[int, float]] = []
    real = dpsgd_module.dp_sgd_gradient

    def spy(model: nn.Module, loss_fn: Any, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> Any:
        calls.append((len(x), kw["expected_batch_size"]))
        return real(model, loss_fn, x, y, **kw)

    monkeypatch.setattr(dpsgd_module, "dp_sgd_gradient", spy)
    n, batch, epochs = 95, 10, 3
    user = _user(n, clip=1.0, noise_multiplier=0.5, batch_size=batch, local_epochs=epochs, algorithm="fedavg")
    assert user.steps_per_round() == epochs * math.ceil(n / batch) == 30
    payload = _payload(user)
    before = [p.clone() for p in payload["parameters"]]
    shared, _ = user.compute_local_updates(payload, rng=torch.Generator().manual_seed(5))
    assert len(calls) == 30
    assert all(e == pytest.approx(batch) for _, e in calls)
    sizes = [s for s, _ in calls]
    # Binomial(95, 10/95) batch sizes: mean 10, sd 2.9; the mean of 30 lies within 10 +- 5 sd / sqrt(30)
    assert abs(sum(sizes) / 30 - 10) < 5 * 2.9 / math.sqrt(30) and len(set(sizes)) > 1
    after = [p.detach() for p in user.model.parameters()]
    for d, a, b in zip(shared["gradients"], after, before):
        assert torch.equal(d, a - b)


def _google(z: float, q: float, steps: int, delta: float = 1e-5) -> float:
    acc = rdp_privacy_accountant.RdpAccountant(orders=list(RDP_ORDERS))
    acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), steps)
    return float(acc.get_epsilon(delta))


def test_each_ue_is_charged_for_every_update_it_put_on_the_air() -> None:
    """A deadline cuts some UEs during their upload (on the air: charged, the BS got nothing) and one
    before it (never transmitted: not charged). Each UE's epsilon is its own q_k, steps_k history; the
    round's epsilon is the largest."""
    cfg = load_config(
        None,
        [*SMALL, "fl.rounds=4", "dp.level=sample", "dp.noise_multiplier=1.0", "fl.fraction=0.5", *DEADLINE],
    )
    result = run(cfg)
    events = result.events
    assert any(e.status == "dropped" and e.attempts > 0 for e in events)
    assert any(e.status == "dropped" and e.attempts == 0 for e in events)
    per_ue = {int(k): v for k, v in result.summary["privacy"]["ue_epsilons"]["per_ue"].items()}
    n = ue_sizes_for(cfg)
    for ue in range(6):
        aired = sum(1 for e in events if e.ue == ue and e.attempts > 0)
        q, steps = min(1.0, 10 / n[ue]), math.ceil(n[ue] / 10)
        expected = _google(1.0, q, steps * aired) if aired else 0.0
        assert per_ue[ue] == pytest.approx(expected, rel=0.01), ue
    assert result.records[-1].epsilon == max(per_ue.values())
    assert result.summary["privacy"]["ue_epsilons"]["max"] == max(per_ue.values())


@pytest.mark.parametrize("algorithm", ["fedavg", "fedsgd"])
def test_a_ue_without_data_takes_no_step_and_shares_zeros(algorithm: str) -> None:
    user = _user(0, clip=1.0, noise_multiplier=1.0, batch_size=10, local_epochs=2, algorithm=algorithm)
    assert user.steps_per_round() == 0
    shared, _ = user.compute_local_updates(_payload(user), rng=torch.Generator().manual_seed(0))
    assert all(torch.equal(t, torch.zeros_like(t)) for t in shared["gradients"])
