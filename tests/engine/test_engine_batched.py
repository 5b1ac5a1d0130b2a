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
    assert len(seq) == len(bat) == load_config(None, overrides).fl.rounds
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


DP = ["dp.level=sample", "dp.noise_multiplier=1.0", "dp.clip=1.0", "dp.delta=1e-5"]


def _group_sizes(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """The sizes of the groups handed to ``fedwave.engine.batched.<name>`` from now on, as they come."""
    import fedwave.engine.batched as batched

    sizes: list[int] = []
    real = getattr(batched, name)

    def counted(users: list[object], *args: object) -> object:
        sizes.append(len(users))
        return real(users, *args)

    monkeypatch.setattr(batched, name, counted)
    return sizes


def test_dp_sgd_users_of_other_models_fall_back_to_sequential_and_say_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dp = [*BASE, "model.name=lenet", "fl.rounds=1", *DP]  # sigmoids: neither kind of chain
    seq, _, seq_final = _simulate([*dp, "engine.executor=sequential"])
    with caplog.at_level(logging.WARNING, logger="fedwave.engine"):
        bat, _, bat_final = _simulate([*dp, "engine.executor=batched"])
    assert seq == bat
    assert all(torch.equal(x, y) for x, y in zip(seq_final, bat_final))
    assert any("DP-SGD" in r.getMessage() and "sequential" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("name", "dp"),
    [
        ("mlp", DP),
        ("2nn", DP),
        # a clip of 0.05 at lr 0.5: nearly every example is clipped, and the noise is half the size
        ("mlp", ["dp.level=sample", "dp.noise_multiplier=0.5", "dp.clip=0.05", "dp.delta=1e-5", "fl.lr=0.5"]),
        # batches of 1 expected: about a third of the Poisson batches are empty (noise only, no seed drawn)
        ("mlp", [*DP, "fl.batch_size=1", "fl.local_epochs=1"]),
    ],
)
def test_dp_sgd_of_linear_chains_is_vectorised_and_matches_sequential(
    monkeypatch: pytest.MonkeyPatch, name: str, dp: list[str]
) -> None:
    """Sample-level DP-SGD under the batched executor: the same Poisson batches, clip factors and noise
    as each UE's sequential DP-SGD (every UE draws from its own generator in the same order), so the
    records and models agree within the tolerance, over two rounds of two epochs with unequal UEs."""
    groups = _group_sizes(monkeypatch, "train_dpsgd_chain")
    _compare([*BASE, f"model.name={name}", *dp])
    assert groups == [5, 5]  # both rounds, all five UEs in one group
    # the noise acts: without it the model ends far from the DP one
    _, _, noisy = _simulate([*BASE, f"model.name={name}", *dp, "engine.executor=batched"])
    _, _, quiet = _simulate(
        [*BASE, f"model.name={name}", *dp, "dp.noise_multiplier=0", "engine.executor=batched"]
    )
    assert max(float((a - b).abs().max()) for a, b in zip(noisy, quiet)) > 100 * TOLERANCE


@pytest.mark.parametrize(
    ("name", "dp", "groups"),
    [
        ("cnn", DP, [5, 5]),  # groups as stacked; in a group the UEs train one after another
        ("convnet", DP, [5, 5]),
        # a clip of 0.05: nearly every example is clipped, and the noise is half the size. Whole runs
        # can amplify rounding in their second round: at dp.clip=0.2, fl.lr=0.3 the executors end
        # 1.5e-8 apart after one round and 1.8e-5 after two (a pooling maximum or a ReLU switches), so
        # the per-UE comparison is in tests/engine/test_engine_dpconv.py
        (
            "cnn",
            ["dp.level=sample", "dp.noise_multiplier=0.5", "dp.clip=0.05", "dp.delta=1e-5", "fl.lr=0.2"],
            [5, 5],
        ),
        # batches of 1 expected: about a third of the Poisson batches are empty (noise only, no seed drawn)
        ("convnet", [*DP, "fl.batch_size=1", "fl.local_epochs=1"], [5, 5]),
        # no clipping, no noise: plain SGD on Poisson batches, the sum over the batch / its expected size
        ("cnn", ["dp.level=sample", "dp.noise_multiplier=0", "dp.clip=null", "dp.delta=1e-5"], [5, 5]),
    ],
)
def test_dp_sgd_of_convolution_chains_is_written_out_and_matches_sequential(
    monkeypatch: pytest.MonkeyPatch, name: str, dp: list[str], groups: list[int]
) -> None:
    """Sample-level DP-SGD of ``cnn`` and ``convnet`` under the batched executor
    (:mod:`fedwave.engine.dpconv`): the same Poisson batches, clip factors and noise as each UE's
    sequential DP-SGD, so the records and models agree within the tolerance, over two rounds of two
    epochs with unequal UEs."""
    calls = _group_sizes(monkeypatch, "train_multistep_batched")
    lone = _written_out_dp_ues(monkeypatch)
    _compare([*BASE, f"model.name={name}", *dp])
    assert calls == groups
    assert lone == [1] * 10  # every UE of both rounds, one at a time


def _written_out_dp_ues(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A 1 for every UE that trains through ``fedwave.engine.dpconv.train_dpsgd_conv`` from now on."""
    import fedwave.engine.batched as batched

    lone: list[int] = []
    real = batched.train_dpsgd_conv

    def counted(user: object, *args: object) -> object:
        lone.append(1)
        return real(user, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(batched, "train_dpsgd_conv", counted)
    return lone


def test_dp_sgd_of_a_convolution_chain_alone_in_its_group_is_written_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MNIST ``cnn``'s UEs exceed the stacking budget and train alone: a DP-SGD UE alone takes the
    written-out step too (not its own sequential code), with the same result."""
    import fedwave.engine.batched as batched

    monkeypatch.setattr(batched, "STACK_BUDGET_BYTES", 1)
    calls = _group_sizes(monkeypatch, "train_multistep_batched")
    lone = _written_out_dp_ues(monkeypatch)
    _compare([*BASE, "model.name=cnn", *DP])
    assert calls == [1] * 10
    assert lone == [1] * 10


def test_dp_sgd_of_convolution_chains_clips_and_adds_noise() -> None:
    """The clip and the noise of the written-out DP-SGD act: without either the model ends elsewhere."""
    base = [*BASE, "model.name=cnn", "fl.rounds=1", "engine.executor=batched", "fl.lr=0.5"]
    _, _, dp = _simulate([*base, "dp.level=sample", "dp.noise_multiplier=0.5", "dp.clip=0.05"])
    _, _, quiet = _simulate([*base, "dp.level=sample", "dp.noise_multiplier=0", "dp.clip=0.05"])
    _, _, free = _simulate([*base, "dp.level=sample", "dp.noise_multiplier=0", "dp.clip=null"])
    assert max(float((a - b).abs().max()) for a, b in zip(dp, quiet)) > 100 * TOLERANCE
    assert max(float((a - b).abs().max()) for a, b in zip(quiet, free)) > 100 * TOLERANCE


def test_groups_above_the_stacking_budget_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of two UEs' parameters: the 5 UEs train as 2 + 2 stacked and 1 alone (its own sequential
    training); a budget below one UE: every UE alone, which is the sequential executor bit for bit."""
    import fedwave.engine.batched as batched
    from fedwave.models.zoo import build_model, num_parameters

    per_ue = 4 * num_parameters(build_model("mlp", (1, 8, 8), 10))
    calls = _group_sizes(monkeypatch, "train_multistep_batched")
    monkeypatch.setattr(batched, "STACK_BUDGET_BYTES", 2 * per_ue)
    _compare([*BASE, "model.name=mlp"])
    assert calls == [2, 2] * 2  # two rounds; the fifth UE of each trained alone
    calls.clear()
    monkeypatch.setattr(batched, "STACK_BUDGET_BYTES", per_ue - 1)
    seq, _, seq_final = _simulate([*BASE, "model.name=mlp", "engine.executor=sequential"])
    bat, _, bat_final = _simulate([*BASE, "model.name=mlp", "engine.executor=batched"])
    assert calls == []
    assert seq == bat
    assert all(torch.equal(x, y) for x, y in zip(seq_final, bat_final))


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_convolution_chain_ues_alone_take_the_written_out_step(
    monkeypatch: pytest.MonkeyPatch, clip: float
) -> None:
    """With no room to stack, a ``cnn`` UE trains alone through ``fedwave.engine.convchain`` (not its
    sequential code): the records agree with ``sequential`` within the tolerance, over two rounds of two
    epochs with unequal UEs, with and without clipping."""
    import fedwave.engine.batched as batched
    import fedwave.engine.convchain as convchain

    steps: list[int] = []
    real = convchain.conv_step

    def counted(*args: object) -> None:
        steps.append(1)
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(batched, "conv_step", counted)
    monkeypatch.setattr(batched, "STACK_BUDGET_BYTES", 1)
    extra = [f"local_privacy.per_example_clipping={clip}"] if clip else []
    _compare([*BASE, "model.name=cnn", *extra])
    # 300 samples over 5 UEs in batches of 8, two epochs, two rounds: every step of the batched run
    assert len(steps) == 2 * 2 * sum(-(-n // 8) for n in (40, 30, 62, 83, 85))


def _hooked_run(executor: str, hook: str) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
    """(start, final state of the global model, calls of the global hook) of a 2NN run under
    ``executor`` with one kind of ``hook``:

    - ``"parameter"``: a gradient hook zeroes the UEs' first-layer weight gradient;
    - ``"module"``: a forward hook halves the output of the UEs' first ``Linear``;
    - ``"loss"``: a forward hook doubles the UEs' loss;
    - ``"global"``: a global forward pre-hook counts every module's forward passes;
    - ``"late"``: the ``"module"`` hook, registered after the first round;
    - ``"forward"``: no hook, but the UEs' first ``Linear`` gets a ``forward`` of its own that halves
      its output (the written-out steps must not take it for a plain ``Linear``).
    """
    from torch.nn.modules.module import register_module_forward_pre_hook

    sim = build_simulation(load_config(None, [*BASE, "model.name=2nn", f"engine.executor={executor}"]))
    users = list({id(u.model): u for u in sim.driver.users}.values())  # one per working model
    calls = [0]
    handle = None

    def halve(_m: object, _args: object, out: torch.Tensor) -> torch.Tensor:
        return out * 0.5

    def hook_modules() -> None:
        for u in users:
            next(m for m in u.model.modules() if isinstance(m, torch.nn.Linear)).register_forward_hook(halve)

    if hook == "parameter":
        for u in users:
            next(u.model.parameters()).register_hook(torch.zeros_like)
    elif hook == "module":
        hook_modules()
    elif hook == "loss":
        for u in {id(u.loss_fn): u for u in sim.driver.users}.values():
            u.loss_fn.register_forward_hook(lambda _m, _a, out: out * 2.0)
    elif hook == "global":
        handle = register_module_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    elif hook == "forward":
        for u in users:
            layer = next(m for m in u.model.modules() if isinstance(m, torch.nn.Linear))
            layer.forward = lambda x, lin=layer: torch.nn.functional.linear(x, lin.weight, lin.bias) * 0.5
    try:
        start = [t.detach().clone() for t in sim.driver.bs.model.state_dict().values()]
        if hook == "late":
            sim.run_rounds(1)
            hook_modules()
            sim.run_rounds(sim.cfg.fl.rounds - 1)
        else:
            sim.run_rounds(sim.cfg.fl.rounds)
    finally:
        if handle is not None:
            handle.remove()
    return start, [t.detach().clone() for t in sim.driver.bs.model.state_dict().values()], calls[0]


@pytest.mark.parametrize("hook", ["parameter", "module", "loss", "global", "late", "forward"])
def test_hooks_and_own_forwards_are_honoured_as_sequential_does(hook: str) -> None:
    start, seq, seq_calls = _hooked_run("sequential", hook)
    _, bat, bat_calls = _hooked_run("batched", hook)
    if hook in ("late", "forward"):  # trained batched (vmapped: float rounding apart) in some round
        assert max(float((a - b).abs().max()) for a, b in zip(seq, bat)) <= TOLERANCE
    else:  # the same (sequential) code throughout, the same bits
        assert all(torch.equal(a, b) for a, b in zip(seq, bat))
    assert float((bat[2] - start[2]).abs().max()) > 1e-3  # the model trained
    if hook == "parameter":  # the zeroed gradient held the first weight where it started
        assert torch.equal(bat[0], start[0])
    if hook == "global":  # the global hook saw every forward pass (the batched steps would make none)
        assert bat_calls == seq_calls > 0
    if hook in ("module", "loss", "late", "forward"):  # it mattered: without it the model ends elsewhere
        _, free, _ = _hooked_run("sequential", "none")
        assert max(float((a - b).abs().max()) for a, b in zip(free, bat)) > 100 * TOLERANCE
