"""Running statistics: every (sub-)user starts from the server's state; exact batch statistics option."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedwave.server.aggregate import aggregate_buffers
from fedwave.users.tensors import persistent_buffers

from .helpers import payload, source, user


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))


def _conv_bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


def _trained_statistics(model: nn.Module) -> nn.Module:
    """Give the BatchNorm layer non-default statistics, as a server model that has trained would have."""
    bn = next(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(7.0)
        bn.num_batches_tracked.fill_(100)
    return model


@pytest.mark.parametrize("steps", [1, 2], ids=["single-step-subusers", "multi-step-subusers"])
def test_each_subuser_starts_from_the_server_state(steps: int) -> None:
    model = _trained_statistics(_bn_model())
    data = source(3, 4)
    fields = {
        "num_data_points": 4,
        "num_local_updates": steps,
        "num_data_per_local_update_step": 2 if steps > 1 else 1,
        "local_learning_rate": 0.1,
        "provide_buffers": True,
    }
    alone = [
        user(
            model, data, user_type="local_update" if steps > 1 else "local_gradient", user_idx=k, **fields
        ).compute_local_updates(payload(model))[0]["buffers"]
        for k in range(3)
    ]
    agg = user(model, data, user_type="multiuser_aggregate", user_range=(0, 3), **fields)
    first, _ = agg.compute_local_updates(payload(model))
    expected = aggregate_buffers(alone)
    assert int(first["buffers"][2]) == int(alone[0][2]) == (1 if steps == 1 else 100 + steps)
    for a, b in zip(first["buffers"], expected):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # Sub-user 1 queried after the others computes what it computes alone.
    own, _ = agg.users[1].compute_local_updates(payload(model))
    for a, b in zip(own["buffers"], alone[1]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # Repeated queries do not accumulate.
    second, _ = agg.compute_local_updates(payload(model))
    assert all(torch.equal(a, b) for a, b in zip(first["buffers"], second["buffers"]))
    assert all(torch.equal(a, b) for a, b in zip(first["gradients"], second["gradients"]))
    # The server's model is untouched.
    assert float(model[2].running_mean[0]) == 5.0 and int(model[2].num_batches_tracked) == 100


def test_single_user_queries_do_not_accumulate_statistics() -> None:
    model = _bn_model()
    u = user(
        model,
        source(1, 4),
        user_type="local_update",
        num_data_points=4,
        num_data_per_local_update_step=2,
        provide_buffers=True,
    )
    a, _ = u.compute_local_updates(payload(model))
    b, _ = u.compute_local_updates(payload(model))
    assert int(a["buffers"][2]) == int(b["buffers"][2]) == 4  # 4 steps, each from the server's 0
    assert all(torch.equal(s, t) for s, t in zip(a["buffers"], b["buffers"]))


def _batch_statistics(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance, per channel, of the input the BatchNorm layer sees."""
    with torch.no_grad():
        if isinstance(model[0], nn.Flatten):
            a = model[1](model[0](x))
            return a.mean(0), a.var(0, unbiased=True)
        a = model[0](x).transpose(0, 1).reshape(2, -1)
        return a.mean(1), a.var(1, unbiased=True)


@pytest.mark.parametrize("clip", [0.0, 0.05], ids=["plain", "per-example-clipping"])
@pytest.mark.parametrize(
    ("option", "server_sends", "exact"),
    [
        (None, False, True),  # default, no buffers from the server: the original framework's rule
        (None, True, False),  # default, FL loop (train-mode buffers from the BS): momentum
        (True, True, True),
        (False, False, False),
    ],
)
def test_exact_batch_statistics_option(
    clip: float, option: bool | None, server_sends: bool, exact: bool
) -> None:
    model = _trained_statistics(_conv_bn_model())
    data = source(1, 6, shape=(1, 4, 4))
    u = user(
        model,
        data,
        num_data_points=6,
        provide_buffers=True,
        local_diff_privacy={"per_example_clipping": clip},
        **({} if option is None else {"exact_batch_statistics": option}),
    )
    bufs = [b.clone() for b in persistent_buffers(model)] if server_sends else None
    shared, true = u.compute_local_updates(payload(model, bufs, mode="train"))
    running_mean, running_var, tracked = shared["buffers"]
    mean, var = _batch_statistics(model, true["data"])
    if exact:
        torch.testing.assert_close(running_mean, mean, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(running_var, var, rtol=1e-6, atol=1e-7)
        assert int(tracked) == 1
    else:  # one momentum update (0.1) from the server's statistics, whatever the clipping
        torch.testing.assert_close(running_mean, 0.9 * 5.0 + 0.1 * mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(running_var, 0.9 * 7.0 + 0.1 * var, rtol=1e-6, atol=1e-6)
        assert int(tracked) == 101
    assert model[1].momentum == 0.1 and u.model[1].momentum == 0.1  # restored on the working copy


def test_exact_statistics_do_not_change_the_gradient() -> None:
    model = _trained_statistics(_conv_bn_model())
    data = source(1, 6, shape=(1, 4, 4))
    on, _ = user(model, data, num_data_points=6, exact_batch_statistics=True).compute_local_updates(
        payload(model)
    )
    off, _ = user(model, data, num_data_points=6, exact_batch_statistics=False).compute_local_updates(
        payload(model)
    )
    assert all(torch.equal(a, b) for a, b in zip(on["gradients"], off["gradients"]))


def test_repr_states_the_batch_statistics_rule() -> None:
    model = _bn_model()
    assert "exact batch statistics (BatchNorm momentum None): when the server sends no buffers" in repr(
        user(model, source(1, 4))
    )
    assert "momentum None): never" in repr(user(model, source(1, 4), exact_batch_statistics=False))
