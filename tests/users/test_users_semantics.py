"""The users' semantics of users.md, checked against hand computations."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from fedwave.errors import ConfigError
from fedwave.users import (
    MultiUserAggregate,
    UserConfig,
    UserDataSource,
    UserMultiStep,
    UserSingleStep,
    construct_user,
    make_setup,
)
from fedwave.users.privacy import global_norm


def _linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3))


def _data(num_users: int = 6, per_user: int = 4) -> UserDataSource:
    g = torch.Generator().manual_seed(1)
    n = num_users * per_user
    x = torch.randn(n, 1, 4, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    parts = [np.arange(k * per_user, (k + 1) * per_user) for k in range(num_users)]
    return UserDataSource(x, y, parts)


def _payload(model: nn.Module) -> dict:
    return {"parameters": [p.detach().clone() for p in model.parameters()], "buffers": None, "metadata": {}}


def _user(model: nn.Module, data: UserDataSource | None = None, **fields: object):
    case = SimpleNamespace(user=UserConfig(**fields), seed=0)
    return construct_user(model, nn.CrossEntropyLoss(), case, make_setup(), data=data or _data())


def test_dispatch_and_unknown_type() -> None:
    model = _linear_model()
    assert isinstance(_user(model, user_type="local_gradient"), UserSingleStep)
    assert isinstance(_user(model, user_type="local_update"), UserMultiStep)
    assert isinstance(_user(model, user_type="multiuser_aggregate", user_range=(0, 2)), MultiUserAggregate)
    case = SimpleNamespace(user=UserConfig.model_construct(user_type="nonsense"), seed=0)
    with pytest.raises(ConfigError, match="local_gradient, local_update, multiuser_aggregate"):
        construct_user(model, nn.CrossEntropyLoss(), case, make_setup(), data=_data())


def test_default_num_data_points_per_type() -> None:
    model = _linear_model()
    assert _user(model, user_type="local_gradient").num_data_points == 1
    assert _user(model, user_type="local_update").num_data_points == 4


def test_zero_learning_rate_gives_zero_difference() -> None:
    model = _linear_model()
    user = _user(model, user_type="local_update", local_learning_rate=0.0)
    shared, _ = user.compute_local_updates(_payload(model))
    assert all(torch.count_nonzero(d) == 0 for d in shared["gradients"])


def test_one_step_is_minus_lr_times_gradient() -> None:
    model = _linear_model()
    data = _data()
    lr = 0.1
    multi = _user(
        model,
        data,
        user_type="local_update",
        num_local_updates=1,
        num_data_per_local_update_step=4,
        local_learning_rate=lr,
    )
    single = _user(model, data, user_type="local_gradient", num_data_points=4)
    diff, _ = multi.compute_local_updates(_payload(model))
    grad, _ = single.compute_local_updates(_payload(model))
    for d, g in zip(diff["gradients"], grad["gradients"]):
        torch.testing.assert_close(d, -lr * g, rtol=1e-5, atol=1e-7)


def test_server_model_is_never_changed() -> None:
    model = _linear_model()
    before = [p.detach().clone() for p in model.parameters()]
    _user(model, user_type="local_update", local_learning_rate=1.0).compute_local_updates(_payload(model))
    for b, p in zip(before, model.parameters()):
        assert torch.equal(b, p)


def test_per_example_clipping_bounds_each_example() -> None:
    model = _linear_model()
    c = 1e-3
    user = _user(
        model, user_type="local_gradient", num_data_points=4, local_diff_privacy={"per_example_clipping": c}
    )
    shared, _ = user.compute_local_updates(_payload(model))
    # The mean of four vectors of norm <= c has norm <= c; unclipped it is far larger.
    assert float(global_norm(shared["gradients"])) <= c * (1 + 1e-5)
    plain, _ = _user(model, user_type="local_gradient", num_data_points=4).compute_local_updates(
        _payload(model)
    )
    assert float(global_norm(plain["gradients"])) > 10 * c


def test_per_example_clipping_matches_manual_loop() -> None:
    model = _linear_model()
    data = _data()
    c = 0.05
    user = _user(
        model,
        data,
        user_type="local_gradient",
        num_data_points=4,
        local_diff_privacy={"per_example_clipping": c},
    )
    shared, true = user.compute_local_updates(_payload(model))
    x, y = true["data"], true["labels"]
    manual = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(4):
        g = torch.autograd.grad(
            nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), list(model.parameters())
        )
        factor = min(1.0, c / float(global_norm(g)))
        for m, gi in zip(manual, g):
            m += gi * factor / 4
    for a, b in zip(shared["gradients"], manual):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_multistep_clipping_bounds_each_step() -> None:
    model = _linear_model()
    c, lr, steps = 1e-3, 1.0, 4
    user = _user(
        model,
        user_type="local_update",
        num_local_updates=steps,
        local_learning_rate=lr,
        local_diff_privacy={"per_example_clipping": c},
    )
    shared, _ = user.compute_local_updates(_payload(model))
    assert float(global_norm(shared["gradients"])) <= steps * lr * c * (1 + 1e-5)


@pytest.mark.parametrize("distribution", ["gaussian", "laplacian"])
def test_gradient_noise_has_configured_scale_and_distribution(distribution: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2000))
    scale = 0.5
    noisy = _user(
        model,
        user_type="local_gradient",
        local_diff_privacy={"gradient_noise": scale, "distribution": distribution},
    )
    clean = _user(model, user_type="local_gradient")
    a, _ = noisy.compute_local_updates(_payload(model))
    b, _ = clean.compute_local_updates(_payload(model))
    noise = torch.cat([(x - y).flatten() for x, y in zip(a["gradients"], b["gradients"])]).double()
    n = noise.numel()
    assert abs(float(noise.mean())) < 5 * scale * math.sqrt(2) / math.sqrt(n)
    if distribution == "gaussian":
        expected_std = scale
        expected_kurtosis = 3.0
    else:
        expected_std = scale * math.sqrt(2)  # Laplace(b): variance 2 b^2
        expected_kurtosis = 6.0
    std = float(noise.std())
    assert abs(std - expected_std) < 0.03 * expected_std
    kurt = float(((noise - noise.mean()) ** 4).mean() / noise.var() ** 2)
    assert abs(kurt - expected_kurtosis) < 0.6


def test_unknown_noise_distribution_is_rejected() -> None:
    with pytest.raises(ValueError, match="gaussian"):
        UserConfig(local_diff_privacy={"distribution": "uniform"})


def test_input_noise_changes_the_update_but_not_true_data() -> None:
    model = _linear_model()
    data = _data()
    noisy = _user(model, data, user_type="local_gradient", local_diff_privacy={"input_noise": 1.0})
    clean = _user(model, data, user_type="local_gradient")
    a, ta = noisy.compute_local_updates(_payload(model))
    b, tb = clean.compute_local_updates(_payload(model))
    assert not torch.allclose(a["gradients"][0], b["gradients"][0])
    assert torch.equal(ta["data"], tb["data"])


@pytest.mark.parametrize(
    ("flag", "field", "user_type"),
    [
        ("provide_labels", "labels", "local_gradient"),
        ("provide_num_data_points", "num_data_points", "local_gradient"),
        ("provide_local_hyperparams", "local_hyperparams", "local_update"),
    ],
)
def test_threat_model_flags_show_or_hide_their_field(flag: str, field: str, user_type: str) -> None:
    model = _linear_model()
    shown, _ = _user(model, user_type=user_type, **{flag: True}).compute_local_updates(_payload(model))
    hidden, _ = _user(model, user_type=user_type, **{flag: False}).compute_local_updates(_payload(model))
    assert shown["metadata"][field] is not None
    assert hidden["metadata"][field] is None


def test_provide_buffers_shows_or_hides_buffers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    shown, _ = _user(
        model, user_type="local_update", provide_buffers=True, num_data_per_local_update_step=2
    ).compute_local_updates(_payload(model))
    hidden, _ = _user(
        model, user_type="local_update", num_data_per_local_update_step=2
    ).compute_local_updates(_payload(model))
    assert shown["buffers"] is not None and len(shown["buffers"]) == 3
    assert hidden["buffers"] is None


def test_labels_are_sorted_and_hyperparams_list_each_step() -> None:
    model = _linear_model()
    user = _user(
        model,
        user_type="local_update",
        provide_labels=True,
        num_local_updates=3,
        num_data_per_local_update_step=2,
    )
    shared, true = user.compute_local_updates(_payload(model))
    labels = shared["metadata"]["labels"]
    assert torch.equal(labels, torch.sort(true["labels"])[0])
    hyper = shared["metadata"]["local_hyperparams"]
    assert hyper["steps"] == 3 and hyper["data_per_step"] == 2 and len(hyper["labels"]) == 3
    # cycling: steps use samples [0,1], [2,3], [0,1]; each step's labels are shared sorted
    assert torch.equal(hyper["labels"][2], torch.sort(true["labels"][[0, 1]])[0])
    assert shared["metadata"]["data_key"] == "inputs"


def test_counted_queries_and_same_samples_every_query() -> None:
    model = _linear_model()
    user = _user(model, user_type="local_gradient", num_data_points=2)
    _, t1 = user.compute_local_updates(_payload(model))
    _, t2 = user.compute_local_updates(_payload(model))
    assert user.counted_queries == 2
    assert torch.equal(t1["data"], t2["data"])


def test_multiuser_mean_is_the_arithmetic_mean() -> None:
    model = _linear_model()
    data = _data()
    agg = _user(model, data, user_type="multiuser_aggregate", user_range=(0, 3), num_data_points=2)
    shared, _ = agg.compute_local_updates(_payload(model))
    singles = [
        _user(model, data, user_type="local_update", user_idx=k, num_data_points=2).compute_local_updates(
            _payload(model)
        )[0]["gradients"]
        for k in range(3)
    ]
    for j, t in enumerate(shared["gradients"]):
        torch.testing.assert_close(t, (singles[0][j] + singles[1][j] + singles[2][j]) / 3)


def test_multiuser_two_equal_updates_of_one_give_one() -> None:
    """The original framework's running average gives 0.75 here; the true mean is 1."""
    model = _linear_model()
    x = torch.zeros(4, 1, 4)
    y = torch.zeros(4, dtype=torch.long)
    data = UserDataSource(x, y, [np.arange(0, 2), np.arange(2, 4)])
    agg = _user(model, data, user_type="multiuser_aggregate", user_range=(0, 2), num_data_points=2)

    for u in agg.users:
        u.compute_local_updates = lambda payload, custom_data=None, **kw: (  # type: ignore[method-assign]
            {
                "gradients": [torch.ones(2)],
                "buffers": None,
                "metadata": {
                    "num_data_points": 2,
                    "labels": None,
                    "local_hyperparams": None,
                    "data_key": "inputs",
                },
            },
            {"data": torch.zeros(2, 1, 4), "labels": torch.zeros(2, dtype=torch.long), "buffers": []},
        )
    shared, _ = agg.compute_local_updates(_payload(model))
    torch.testing.assert_close(shared["gradients"][0], torch.ones(2))


def test_multiuser_true_data_holds_all_users_and_range_may_start_anywhere() -> None:
    model = _linear_model()
    data = _data()
    agg = _user(
        model,
        data,
        user_type="multiuser_aggregate",
        user_range=(3, 6),
        num_data_points=4,
        provide_labels=True,
    )
    shared, true = agg.compute_local_updates(_payload(model))
    expected = torch.cat([data.inputs[k * 4 : (k + 1) * 4] for k in range(3, 6)])
    assert torch.equal(true["data"], expected)
    assert torch.equal(true["labels"], torch.cat([data.labels[k * 4 : (k + 1) * 4] for k in range(3, 6)]))
    assert shared["metadata"]["num_data_points"] == 12
    assert shared["metadata"]["num_users"] == 3
    assert [u.user_idx for u in agg.users] == [3, 4, 5]


def test_multiuser_shares_one_working_copy() -> None:
    model = _linear_model()
    agg = _user(model, user_type="multiuser_aggregate", user_range=(0, 5))
    assert len({id(u.model) for u in agg.users}) == 1
    assert agg.users[0].model is not model


def test_user_range_beyond_partition_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="outside the 6 users"):
        _user(_linear_model(), user_type="multiuser_aggregate", user_range=(4, 8))


def test_epoch_notation_maps_onto_steps() -> None:
    model = _linear_model()
    user = _user(
        model,
        user_type="local_update",
        num_data_points=4,
        local_epochs=3,
        num_data_per_local_update_step=3,
        shuffle=True,
    )
    batches = user.batches(4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [3, 1, 3, 1, 3, 1]  # 3 epochs of ceil(4/3) = 2 steps
    for e in range(3):
        assert sorted(torch.cat(batches[2 * e : 2 * e + 2]).tolist()) == [0, 1, 2, 3]


def test_repr_describes_threat_model() -> None:
    text = repr(
        _user(
            _linear_model(),
            user_type="local_update",
            provide_labels=True,
            local_diff_privacy={"gradient_noise": 0.1},
        )
    )
    assert "UserMultiStep" in text and "labels" in text and "unaccounted" in text and "local FL setup" in text
