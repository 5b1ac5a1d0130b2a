"""Random layers (Dropout) in users: per-example clipping works, masks come from the user's stream."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fedwave.users.perexample import clip_per_example, per_example_gradients, per_example_norms
from fedwave.users.randomness import seeded_global_rng

from .helpers import payload, source, user

P_DROP = 0.5


def _dropnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.Dropout(P_DROP), nn.Linear(16, 3))


def _grads_with_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> list:
    """Gradient of one example with an explicit dropout mask (the layers of ``_dropnet`` by hand)."""
    lin1, lin2 = model[1], model[3]
    h = lin1(x.flatten()[None]) * mask / (1 - P_DROP)
    loss = nn.functional.cross_entropy(lin2(h), y[None])
    return list(torch.autograd.grad(loss, list(model.parameters())))


def test_per_example_clipping_with_dropout_in_train_mode() -> None:
    model = _dropnet()
    data = source(1, 8)
    x, y = data.inputs, data.labels
    with seeded_global_rng(torch.Generator().manual_seed(5)):
        per = per_example_gradients(copy.deepcopy(model).train(), nn.CrossEntropyLoss(), x, y)
    norms = per_example_norms(per)
    clip = float(norms.median())  # about half the examples are clipped
    u = user(model, data, num_data_points=8, local_diff_privacy={"per_example_clipping": clip})
    shared, _ = u.compute_local_updates(payload(model), rng=torch.Generator().manual_seed(5))

    # Each example's gradient of the last weight is zero exactly in the columns its mask dropped.
    masks = (per[2].abs().sum(1) > 0).float()
    assert 0.3 < float(masks.mean()) < 0.7  # p = 0.5 over 128 draws (sd 0.044)
    assert len({tuple(m.tolist()) for m in masks}) == 8  # a different mask per example
    # The vmapped gradients are those of a per-example loop with the same masks...
    loop = [_grads_with_mask(model, x[i], y[i], masks[i]) for i in range(8)]
    for j in range(4):
        torch.testing.assert_close(per[j], torch.stack([g[j] for g in loop]), rtol=1e-5, atol=1e-7)
    # ...each clipped per-example gradient has norm <= clip, some were clipped...
    clipped_norms = per_example_norms(clip_per_example(per, clip))
    assert float(clipped_norms.max()) <= clip * (1 + 1e-6)
    assert int((norms > clip * 1.001).sum()) >= 2
    # ...and the user shares the mean of the loop's gradients clipped one by one.
    expected = [torch.zeros_like(p) for p in model.parameters()]
    for g in loop:
        factor = min(1.0, clip / float(torch.sqrt(sum((t.double() ** 2).sum() for t in g))))
        for e, t in zip(expected, g):
            e += t * factor / 8
    for a, b in zip(shared["gradients"], expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "fields",
    [
        {
            "user_type": "local_gradient",
            "num_data_points": 4,
            "local_diff_privacy": {"per_example_clipping": 0.1},
        },
        {"user_type": "local_gradient", "num_data_points": 4},
        {
            "user_type": "local_update",
            "num_data_points": 4,
            "num_local_updates": 3,
            "local_learning_rate": 0.5,
        },
    ],
    ids=["single-clipped", "single", "multi"],
)
def test_dropout_masks_are_reproducible_and_leave_global_rng_alone(fields: dict) -> None:
    model = _dropnet()
    data = source(1, 4)

    def run(seed: int) -> list[torch.Tensor]:
        shared, _ = user(model, data, **fields).compute_local_updates(
            payload(model), rng=torch.Generator().manual_seed(seed)
        )
        return shared["gradients"]

    torch.manual_seed(1234)
    before = torch.get_rng_state()
    a, b, c = run(7), run(7), run(8)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    assert not all(torch.equal(s, t) for s, t in zip(a, c))  # other seed, other masks


def test_default_stream_reproducible_across_fresh_users() -> None:
    model = _dropnet()
    data = source(1, 4)
    fields = {"num_data_points": 4, "local_diff_privacy": {"per_example_clipping": 0.1}}
    a, _ = user(model, data, **fields).compute_local_updates(payload(model))
    torch.manual_seed(99)  # the global RNG's state must not matter
    b, _ = user(model, data, **fields).compute_local_updates(payload(model))
    assert all(torch.equal(s, t) for s, t in zip(a["gradients"], b["gradients"]))
