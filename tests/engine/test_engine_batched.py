"""``engine.executor=batched`` gives the records of ``sequential`` up to float rounding (issue 12 item 1).

UEs with unequal data (Dirichlet partition: different step counts and last-batch sizes), two local
epochs, shuffled batches, every model of the zoo (BatchNorm in ``resnet``), and global-norm clipping.
"""

from __future__ import annotations

import logging

import pytest
import torch

from fedwave.config import load_config
from fedwave.engine.batched import TOLERANCE
from fedwave.fl.run import build_simulation
from fedwave.models.zoo import model_names

BASE = [
    "data.max_train=300",
    "data.partition=dirichlet",
    "fl.num_ues=5",
    "fl.fraction=1.0",
    "fl.rounds=2",
    "fl.batch_size=8",  # UE sizes 40, 30, 62, 83, 85: 4 to 11 steps, no 1-sample batch (BatchNorm)
    "fl.local_epochs=2",
    "fl.lr=0.05",
]


def _simulate(overrides: list[str]) -> tuple[list[dict[str, object]], list[torch.Tensor], list[torch.Tensor]]:
    sim = build_simulation(load_config(None, overrides))
    start = [t.detach().clone() for t in sim.driver.bs.model.state_dict().values()]
    sim.run_rounds(sim.cfg.fl.rounds)
    final = [t.detach().clone() for t in sim.driver.bs.model.state_dict().values()]
    return [r.as_dict() for r in sim.driver.records], start, final


def _compare(overrides: list[str]) -> float:
    """Largest parameter difference batched vs sequential; asserts the records agree."""
    seq, start, seq_final = _simulate([*overrides, "engine.executor=sequential"])
    bat, _, bat_final = _simulate([*overrides, "engine.executor=batched"])
    moved = max(float((a - b).abs().max()) for a, b in zip(seq_final, start) if a.is_floating_point())
    assert moved > 1e-3, "training did not move the model: the comparison would prove nothing"
    worst = 0.0
    for a, b in zip(seq_final, bat_final):
        worst = max(worst, float((a.double() - b.double()).abs().max()))
    assert worst <= TOLERANCE
    for r, s in zip(seq, bat):
        for key, value in r.items():
            if key in ("loss", "accuracy") or key.startswith("extra_step_norm"):
                assert abs(float(value) - float(s[key])) <= 1e-4, key  # type: ignore[arg-type]
            else:
                assert value == s[key], key  # timing, bytes, counts: identical
    return worst


@pytest.mark.parametrize("name", model_names())
def test_batched_matches_sequential_for_every_model(name: str) -> None:
    # resnet on 8x8 digits ends in 1x1 BatchNorm maps whose batch variance can be ~0: a rounding
    # difference of 1e-7 is then amplified up to 1/sqrt(eps) ~ 300x per step, in sequential runs too
    # (two float-rounding variants of the *same* sequential arithmetic diverge alike), so BatchNorm is
    # compared over one round of one epoch (up to 11 steps per UE), where that has not happened yet.
    short = ["fl.rounds=1", "fl.local_epochs=1"] if name == "resnet" else []
    _compare([*BASE, f"model.name={name}", *short])


def test_batched_matches_sequential_with_clipping() -> None:
    clipped = [*BASE, "model.name=mlp", "fl.lr=0.5", "local_privacy.per_example_clipping=0.05"]
    _compare(clipped)
    # the clip is active: without it the model ends elsewhere (far beyond the tolerance)
    _, _, free = _simulate([*BASE, "model.name=mlp", "fl.lr=0.5", "engine.executor=batched"])
    _, _, clip = _simulate([*clipped, "engine.executor=batched"])
    assert max(float((a - b).abs().max()) for a, b in zip(free, clip)) > 100 * TOLERANCE


@pytest.mark.parametrize("name", ["resnet", "mlp"])  # grouped steps (BatchNorm); padded steps
def test_batched_is_bit_identical_run_to_run(name: str) -> None:
    cfg = [*BASE, f"model.name={name}", "engine.executor=batched"]
    a, _, fa = _simulate(cfg)
    b, _, fb = _simulate(cfg)
    assert a == b
    assert all(torch.equal(x, y) for x, y in zip(fa, fb))


def test_dp_sgd_users_fall_back_to_sequential_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    dp = [
        *BASE,
        "model.name=mlp",
        "fl.rounds=1",
        "dp.level=sample",
        "dp.noise_multiplier=1.0",
        "dp.clip=1.0",
        "dp.delta=1e-5",
    ]
    seq, _, seq_final = _simulate([*dp, "engine.executor=sequential"])
    with caplog.at_level(logging.WARNING, logger="fedwave.engine"):
        bat, _, bat_final = _simulate([*dp, "engine.executor=batched"])
    assert seq == bat
    assert all(torch.equal(x, y) for x, y in zip(seq_final, bat_final))
    assert any("UserDPSGD" in r.getMessage() and "sequential" in r.getMessage() for r in caplog.records)


def test_groups_above_the_stacking_budget_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of two UEs' parameters: the 5 UEs train as 2 + 2 stacked and 1 alone."""
    import fedwave.engine.batched as batched

    calls = _count_calls(monkeypatch)
    monkeypatch.setattr(batched, "STACK_BUDGET_BYTES", 2 * _bytes_per_ue("mlp"))
    _compare([*BASE, "model.name=mlp"])
    assert calls == {"stacked": [2, 2] * 2, "alone": 2}  # two rounds; the fifth UE of each alone


@pytest.mark.parametrize(
    ("name", "extra"),
    [("cnn", []), ("mlp", ["fl.lr=0.5", "local_privacy.per_example_clipping=0.05"])],
)
def test_ues_alone_match_sequential(name: str, extra: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget below one UE: every UE trains alone (channels-last convolutions for ``cnn``, clipping for
    ``mlp``), within the tolerance of the sequential executor; the shared working model is left in the
    contiguous format."""
    import fedwave.engine.batched as batched

    calls = _count_calls(monkeypatch)
    monkeypatch.setattr(batched, "STACK_BUDGET_BYTES", _bytes_per_ue(name) - 1)
    _compare([*BASE, f"model.name={name}", *extra])
    assert calls == {"stacked": [], "alone": 5 * 2}
    sim = build_simulation(load_config(None, [*BASE, f"model.name={name}", "engine.executor=batched"]))
    sim.run_rounds(1)
    assert all(p.is_contiguous() for p in sim.driver.users[0].model.parameters())


def _bytes_per_ue(name: str) -> int:
    from fedwave.models.zoo import build_model, num_parameters

    return 4 * num_parameters(build_model(name, (1, 8, 8), 10))


def _count_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Record the group sizes of the stacked trainings and the number of lone ones."""
    import fedwave.engine.batched as batched

    calls: dict[str, object] = {"stacked": [], "alone": 0}
    stacked, alone = batched.train_multistep_batched, batched.train_multistep_alone

    def count_stacked(users: list[object], *args: object) -> object:
        calls["stacked"].append(len(users))  # type: ignore[attr-defined]
        return stacked(users, *args)  # type: ignore[arg-type]

    def count_alone(*args: object) -> object:
        calls["alone"] = int(calls["alone"]) + 1  # type: ignore[call-overload]
        return alone(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(batched, "train_multistep_batched", count_stacked)
    monkeypatch.setattr(batched, "train_multistep_alone", count_alone)
    return calls
