"""Local-step schedule and per-step labels (the original framework's rules); return_true_user_data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedwave.users import UserDataSource
from fedwave.users.schedule import cycling_batches

from .helpers import payload, source, user


@pytest.mark.parametrize(
    ("n", "per_step", "steps", "expected"),
    [
        (5, 2, 4, [[0, 1], [2, 3], [4], [1, 2]]),  # the step that reaches the end is short
        (4, 2, 3, [[0, 1], [2, 3], [0, 1]]),
        (4, 6, 3, [[0, 1, 2, 3], [2, 3], [0, 1, 2, 3]]),  # more per step than samples
        (3, 1, 4, [[0], [1], [2], [0]]),
    ],
)
def test_cycling_schedule_is_the_original_slicing(n: int, per_step: int, steps: int, expected: list) -> None:
    assert [b.tolist() for b in cycling_batches(n, per_step, steps)] == expected


def test_multistep_trains_on_the_schedule_and_shares_sorted_step_labels() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 1, 4, generator=g)
    y = torch.tensor([2, 0, 1, 0, 2])
    data = UserDataSource(x, y, [np.arange(5)])
    lr = 0.5
    u = user(
        model,
        data,
        user_type="local_update",
        num_data_points=5,
        num_local_updates=4,
        num_data_per_local_update_step=2,
        local_learning_rate=lr,
    )
    shared, _ = u.compute_local_updates(payload(model))
    hyper = shared["metadata"]["local_hyperparams"]
    assert hyper["steps"] == 4 and hyper["data_per_step"] == 2
    assert [h.tolist() for h in hyper["labels"]] == [[0, 2], [0, 1], [2], [0, 1]]
    # Replay plain SGD by hand on batches [0,1], [2,3], [4], [1,2].
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    for idx in ([0, 1], [2, 3], [4], [1, 2]):
        out = x[idx].flatten(1) @ params[0].T + params[1]
        grads = torch.autograd.grad(nn.functional.cross_entropy(out, y[idx]), params)
        params = [(p - lr * gr).detach().requires_grad_(True) for p, gr in zip(params, grads)]
    for d, p, p0 in zip(shared["gradients"], params, model.parameters()):
        torch.testing.assert_close(d, p.detach() - p0.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("user_type", ["local_gradient", "local_update", "multiuser_aggregate"])
def test_return_true_user_data_false_skips_the_data_only(user_type: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    data = source(3, 4)
    fields = {
        "user_type": user_type,
        "num_data_points": 4,
        "num_data_per_local_update_step": 2,
        "user_range": (0, 3),
        "provide_labels": True,
    }
    a, ta = user(model, data, **fields).compute_local_updates(payload(model))
    b, tb = user(model, data, **fields).compute_local_updates(payload(model), return_true_user_data=False)
    assert tb == {"data": None, "labels": None, "buffers": None}
    assert all(torch.equal(s, t) for s, t in zip(a["gradients"], b["gradients"]))
    assert torch.equal(a["metadata"]["labels"], b["metadata"]["labels"])
    assert ta["data"] is not None and len(ta["buffers"]) == 3


def test_multiuser_positional_flag_and_true_buffers_are_the_aggregate() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    data = source(3, 4)
    agg = user(
        model,
        data,
        user_type="multiuser_aggregate",
        user_range=(0, 3),
        num_data_points=4,
        num_data_per_local_update_step=2,
        provide_buffers=True,
    )
    shared, true = agg.compute_local_updates(payload(model))  # default: all users' true data
    assert torch.equal(true["data"], data.inputs)
    assert all(torch.equal(s, t) for s, t in zip(true["buffers"], shared["buffers"]))
    _, skipped = agg.compute_local_updates(payload(model), False)  # the original's positional form
    assert skipped["data"] is None
