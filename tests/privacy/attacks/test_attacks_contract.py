"""Contract every registered attack satisfies: recovery, model untouched, determinism, threat model."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from fedwave.errors import ConfigError, FedwaveError
from fedwave.privacy.attacks import (
    AttackNotApplicable,
    ThreatModelError,
    attack_names,
    get_attack,
    run_attack,
)
from fedwave.users.single import UserSingleStep

from .conftest import attack_psnr, fast_cfg, make_model, mean_image_psnr, observe

ALL = attack_names()
MODEL_FOR = {"analytic": "mlp", "idlg": "lenet", "dlg": "lenet", "ig": "lenet"}


def test_registry_lists_the_four_attacks_and_rejects_unknown_names() -> None:
    assert set(ALL) == {"analytic", "idlg", "dlg", "ig"}
    with pytest.raises(ConfigError, match="Did you mean 'dlg'"):
        get_attack("dgl")


@pytest.mark.parametrize("name", ALL)
def test_attack_signature_takes_only_what_the_bs_has(name: str) -> None:
    params = list(inspect.signature(get_attack(name)).parameters)
    assert params == ["obs", "server", "cfg", "rng", "progress"]


@pytest.mark.parametrize("name", ALL)
def test_recovers_a_planted_single_sample_far_better_than_a_blind_guess(digits, name: str) -> None:
    model = make_model(MODEL_FOR[name], digits)
    seen = observe(model, digits, [5])
    rec = run_attack(name, seen.obs, seen.server, fast_cfg(name), rng=torch.Generator().manual_seed(0))
    blind = mean_image_psnr(digits, seen.true["data"])
    got = attack_psnr(seen, rec.data)
    assert got > blind + 15.0, (got, blind)
    assert rec.labels.tolist() == seen.true["labels"].tolist()


@pytest.mark.parametrize("name", ALL)
def test_output_contract_and_model_untouched(digits, name: str) -> None:
    model = make_model(MODEL_FOR[name], digits)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = observe(model, digits, [3, 40])
    rec = run_attack(name, seen.obs, seen.server, fast_cfg(name), rng=torch.Generator().manual_seed(1))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training  # the mode the BS left it in
    assert all(p.grad is None for p in model.parameters())
    assert rec.data.shape == (2, *digits.input_shape) and torch.isfinite(rec.data).all()
    lo, hi = seen.server.box()
    assert (rec.data >= lo - 1e-6).all() and (rec.data <= hi + 1e-6).all()
    assert rec.labels.dtype == torch.long and rec.labels.shape == (2,)
    assert ((rec.labels >= 0) & (rec.labels < digits.num_classes)).all()
    json.dumps(rec.diagnostics)


@pytest.mark.parametrize("name", ALL)
def test_same_generator_same_reconstruction(digits, name: str) -> None:
    model = make_model(MODEL_FOR[name], digits)
    seen = observe(model, digits, [7])
    cfg = fast_cfg(name)
    a = run_attack(name, seen.obs, seen.server, cfg, rng=torch.Generator().manual_seed(3))
    b = run_attack(name, seen.obs, seen.server, cfg, rng=torch.Generator().manual_seed(3))
    assert torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)


class _Poison(dict):
    """A true_user_data that fails on any access."""

    def __getitem__(self, key: object) -> object:
        raise AssertionError("an attack read true_user_data")

    def get(self, key: object, default: object = None) -> object:
        raise AssertionError("an attack read true_user_data")


@pytest.mark.parametrize("name", ALL)
def test_attack_cannot_reach_true_user_data(digits, monkeypatch, name: str) -> None:
    model = make_model(MODEL_FOR[name], digits)
    cfg = fast_cfg(name)
    clean = observe(model, digits, [9])
    expected = run_attack(name, clean.obs, clean.server, cfg, rng=torch.Generator().manual_seed(0))
    monkeypatch.setattr(UserSingleStep, "_true_data", lambda self, *args, **kwargs: _Poison())
    poisoned = observe(model, digits, [9])
    assert isinstance(poisoned.true, _Poison)
    assert set(poisoned.obs.metadata) == {"num_data_points", "labels", "local_hyperparams", "data_key"}
    assert poisoned.obs.meta("labels") is None  # provide_labels is off by default
    got = run_attack(name, poisoned.obs, poisoned.server, cfg, rng=torch.Generator().manual_seed(0))
    assert torch.equal(got.data, expected.data) and torch.equal(got.labels, expected.labels)


@pytest.mark.parametrize("name", ALL)
def test_hidden_sample_count_without_guess_is_a_clear_error(digits, name: str) -> None:
    model = make_model(MODEL_FOR[name], digits)
    seen = observe(model, digits, [1], provide_num_data_points=False)
    with pytest.raises(ThreatModelError, match=r"number of samples.*provide_num_data_points.*guess"):
        run_attack(name, seen.obs, seen.server, fast_cfg(name), rng=torch.Generator())
    guessed = fast_cfg(name, guess={"num_data_points": 1})
    rec = run_attack(name, seen.obs, seen.server, guessed, rng=torch.Generator())
    assert rec.diagnostics["guessed"]["num_data_points"] == 1


@pytest.mark.parametrize("name", ["idlg", "dlg", "ig"])
def test_multi_step_without_hyperparams_or_guess_is_a_clear_error(digits, name: str) -> None:
    model = make_model("lenet", digits)
    seen = observe(model, digits, [1], user_type="local_update", provide_local_hyperparams=False)
    assert seen.obs.meta("local_hyperparams") is None
    with pytest.raises(ThreatModelError, match=r"local lr.*provide_local_hyperparams.*guess\.lr"):
        run_attack(name, seen.obs, seen.server, fast_cfg(name), rng=torch.Generator())


def test_analytic_refuses_models_without_a_first_fc_layer_with_bias(digits) -> None:
    seen = observe(make_model("lenet", digits), digits, [1])
    with pytest.raises(AttackNotApplicable, match="first layer is fully connected"):
        run_attack("analytic", seen.obs, seen.server, fast_cfg("analytic"), rng=torch.Generator())
    mlp = observe(make_model("mlp", digits), digits, [1])
    grads = list(mlp.obs.gradients)
    grads[1] = torch.zeros_like(grads[1])  # the codec dropped the bias gradient
    obs = type(mlp.obs)(tuple(grads), "gradient", mlp.obs.metadata)
    with pytest.raises(ThreatModelError, match="no usable first-layer bias gradient"):
        run_attack("analytic", obs, mlp.server, fast_cfg("analytic"), rng=torch.Generator())
    assert issubclass(ThreatModelError, FedwaveError) and issubclass(AttackNotApplicable, FedwaveError)


def test_analytic_is_exact_for_one_sample_and_recovers_a_batch_behind_relu(digits) -> None:
    model = make_model("2nn", digits)
    one = observe(model, digits, [11])
    rec = run_attack("analytic", one.obs, one.server, fast_cfg("analytic"), rng=torch.Generator())
    assert attack_psnr(one, rec.data) >= 60.0
    batch = observe(model, digits, [2, 20, 200, 700])
    rec = run_attack("analytic", batch.obs, batch.server, fast_cfg("analytic"), rng=torch.Generator())
    assert rec.diagnostics["samples_recovered"] == 4
    assert attack_psnr(batch, rec.data) >= 60.0
    assert sorted(rec.labels.tolist()) == sorted(batch.true["labels"].tolist())


@pytest.mark.parametrize("name", ["dlg", "ig"])
def test_multi_step_update_is_unrolled_with_shared_or_guessed_hyperparameters(digits, name: str) -> None:
    model = make_model("lenet", digits)
    user = {"user_type": "local_update", "num_local_updates": 2, "local_learning_rate": 0.1}
    shared = observe(model, digits, [4], **user)
    assert shared.obs.meta("local_hyperparams")["steps"] == 2
    rec = run_attack(name, shared.obs, shared.server, fast_cfg(name), rng=torch.Generator().manual_seed(0))
    assert attack_psnr(shared, rec.data) > mean_image_psnr(digits, shared.true["data"]) + 15.0
    assert rec.diagnostics["label_source"] == "shared (per local step)"
    hidden = observe(model, digits, [4], provide_local_hyperparams=False, **user)
    cfg = fast_cfg(name, guess={"lr": 0.1, "steps": 2, "data_per_step": 1})
    rec = run_attack(name, hidden.obs, hidden.server, cfg, rng=torch.Generator().manual_seed(0))
    assert rec.diagnostics["guessed"] == {"lr": 0.1, "steps": 2, "data_per_step": 1}
    assert attack_psnr(hidden, rec.data) > mean_image_psnr(digits, hidden.true["data"]) + 15.0
