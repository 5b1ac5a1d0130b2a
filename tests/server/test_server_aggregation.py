"""The BS: aggregation maths, buffers, tied weights, NaN rejection, server optimizers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fedwave.server import BaseStation, ReceivedUpdate, aggregate_buffers, weighted_mean
from fedwave.users.tensors import load_parameters, persistent_buffers


def _server_cfg(**kw: float) -> SimpleNamespace:
    base = {
        "optimizer": "sgd",
        "lr": 1.0,
        "momentum": 0.0,
        "nesterov": False,
        "beta1": 0.9,
        "beta2": 0.99,
        "eps": 1e-3,
    }
    base.update(kw)
    return SimpleNamespace(**base)


def _bs(model: nn.Module, algorithm: str = "fedavg", weighting: str = "samples", **kw: float) -> BaseStation:
    return BaseStation(
        model,
        _server_cfg(**kw),
        algorithm=algorithm,
        weighting=weighting,  # type: ignore[arg-type]
        x_test=torch.zeros(2, 4),
        y_test=torch.zeros(2, dtype=torch.long),
    )


def test_weighted_mean_by_hand() -> None:
    a, b = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, 6.0])]
    torch.testing.assert_close(weighted_mean([a, b])[0], torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(weighted_mean([a, b], [3, 1])[0], torch.tensor([1.5, 3.0]))
    with pytest.raises(ValueError):
        weighted_mean([a, b], [0, 0])


def test_fedavg_with_sgd_lr1_is_the_weighted_mean_of_local_models() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    bs = _bs(model)
    w0 = [p.detach().clone() for p in model.parameters()]
    d1 = [torch.ones_like(p) for p in w0]
    d2 = [3 * torch.ones_like(p) for p in w0]
    bs.aggregate([ReceivedUpdate(0, d1, 10), ReceivedUpdate(1, d2, 30)])
    for p, w in zip(bs.model.parameters(), w0):
        torch.testing.assert_close(p.detach(), w + 2.5)  # (10*1 + 30*3) / 40


def test_fedsgd_takes_a_gradient_step() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    bs = _bs(model, algorithm="fedsgd", weighting="uniform", lr=0.1)
    w0 = [p.detach().clone() for p in model.parameters()]
    g = [torch.full_like(p, 2.0) for p in w0]
    bs.aggregate([ReceivedUpdate(0, g, 1), ReceivedUpdate(1, g, 5)])
    for p, w in zip(bs.model.parameters(), w0):
        torch.testing.assert_close(p.detach(), w - 0.2)


def test_momentum_and_adam_change_the_step() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    d = [torch.ones_like(p) for p in model.parameters()]
    plain, mom, adam = _bs(model), _bs(model, momentum=0.9), _bs(model, optimizer="adam", lr=0.01)
    for bs in (plain, mom, adam):
        for _ in range(2):
            bs.aggregate([ReceivedUpdate(0, d, 1)])
    w0 = next(model.parameters()).detach()
    moved = {
        name: float((next(bs.model.parameters()).detach() - w0).mean())
        for name, bs in (("plain", plain), ("mom", mom), ("adam", adam))
    }
    assert moved["plain"] == pytest.approx(2.0)
    assert moved["mom"] == pytest.approx(1.0 + 1.9)  # second step carries 0.9 of the first
    assert 0 < moved["adam"] < 0.05


def test_nan_or_inf_update_is_rejected_and_not_aggregated() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    bs = _bs(model)
    w0 = [p.detach().clone() for p in model.parameters()]
    good = [torch.ones_like(p) for p in w0]
    bad = [torch.full_like(p, float("nan")) for p in w0]
    inf = [torch.full_like(p, float("inf")) for p in w0]
    outcome = bs.aggregate([ReceivedUpdate(0, good, 1), ReceivedUpdate(1, bad, 1), ReceivedUpdate(2, inf, 1)])
    assert outcome.rejected == [1, 2] and outcome.aggregated == [0]
    for p, w in zip(bs.model.parameters(), w0):
        torch.testing.assert_close(p.detach(), w + 1)


BAD_UPDATES = {
    # (kind of bad update, weighting): one bad UE among good ones; the mean the others give
    "nan entry": ("samples", 4.0),
    "inf entry, weight 0": ("samples", 4.0),
    "inf entry, no samples": ("samples", 4.0),
    "-inf entry, uniform": ("uniform", 3.0),
    "inf buffer": ("samples", 4.0),
}


@pytest.mark.parametrize("kind", sorted(BAD_UPDATES))
def test_one_bad_entry_is_found_whatever_the_update_weight(kind: str) -> None:
    # The BS checks the mean it forms rather than each update; one NaN or infinity in one entry of one
    # update must still reject that update, also when the update has weight 0 (the mean never reads it)
    # or the only bad value sits in a buffer. The model then moves by the mean of the good updates:
    # (1*1 + 3*5)/4 = 4 by samples, (1 + 5)/2 = 3 uniform.
    weighting, expected = BAD_UPDATES[kind]
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    bs = _bs(model, weighting=weighting)
    w0 = [p.detach().clone() for p in model.parameters()]
    buffers = [b.detach().clone() for b in persistent_buffers(model)]
    u = [torch.full_like(p, 7.0) for p in w0]
    samples, weight, sent = 2, 1.0, buffers
    if kind == "inf buffer":
        sent = [b.clone() for b in buffers]
        sent[1][0] = float("inf")
    else:
        where, value = {"nan entry": (2, "nan"), "-inf entry, uniform": (1, "-inf")}.get(kind, (1, "inf"))
        u[where].view(-1)[-1] = float(value)
    if kind.endswith("weight 0"):
        weight = 0.0
    if kind.endswith("no samples"):
        samples = 0
    good0 = [torch.full_like(p, 1.0) for p in w0]
    good2 = [torch.full_like(p, 5.0) for p in w0]
    outcome = bs.aggregate(
        [
            ReceivedUpdate(0, good0, 1, buffers),
            ReceivedUpdate(1, u, samples, sent, weight=weight),
            ReceivedUpdate(2, good2, 3, buffers),
        ]
    )
    assert outcome.rejected == [1] and outcome.aggregated == [0, 2]
    for p, w in zip(bs.model.parameters(), w0):
        torch.testing.assert_close(p.detach(), w + expected)


def test_a_non_finite_update_of_other_shapes_is_rejected_before_the_shapes_are_compared() -> None:
    model = nn.Linear(4, 2)
    bs = _bs(model)
    w0 = [p.detach().clone() for p in model.parameters()]
    good = [torch.ones_like(p) for p in w0]
    odd = [torch.full((3, 3), float("nan")), torch.zeros(2)]
    outcome = bs.aggregate([ReceivedUpdate(0, good, 1), ReceivedUpdate(1, odd, 1)])
    assert outcome.rejected == [1] and outcome.aggregated == [0]
    for p, w in zip(bs.model.parameters(), w0):
        torch.testing.assert_close(p.detach(), w + 1)
    with pytest.raises(ValueError, match="tensor shapes"):  # finite but of other shapes: refused
        bs.aggregate([ReceivedUpdate(0, good, 1), ReceivedUpdate(1, [torch.zeros(3, 3), torch.zeros(2)], 1)])


def test_huge_finite_updates_are_aggregated_not_rejected() -> None:
    # Entries near float32's largest value: their float32 sum overflows (the cheap test of the mean says
    # "not finite"), yet every entry is finite, so no update is rejected: the model takes their mean.
    model = nn.Linear(4, 2)
    bs = _bs(model)
    w0 = [p.detach().clone() for p in model.parameters()]
    big = [torch.full_like(p, 3.0e38) for p in w0]
    outcome = bs.aggregate([ReceivedUpdate(0, big, 1), ReceivedUpdate(1, big, 1)])
    assert outcome.rejected == [] and outcome.aggregated == [0, 1] and not outcome.rolled_back
    for p, w in zip(bs.model.parameters(), w0):
        torch.testing.assert_close(p.detach(), w + 3.0e38)


def test_batchnorm_buffers_float_weighted_mean_integer_max() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    bs = _bs(model)
    names = [n for n, _ in model.named_buffers()]
    assert names == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    zeros = [torch.zeros_like(p) for p in model.parameters()]
    b1 = [torch.full((3,), 1.0), torch.full((3,), 2.0), torch.tensor(5)]
    b2 = [torch.full((3,), 3.0), torch.full((3,), 6.0), torch.tensor(9)]
    bs.aggregate([ReceivedUpdate(0, zeros, 1, b1), ReceivedUpdate(1, zeros, 3, b2)])
    rm, rv, nbt = persistent_buffers(bs.model)
    torch.testing.assert_close(rm, torch.full((3,), 2.5))
    torch.testing.assert_close(rv, torch.full((3,), 5.0))
    assert nbt.dtype == torch.int64 and int(nbt) == 9
    out = aggregate_buffers([b1, b2])
    assert out[2].dtype == torch.int64


def test_tied_weights_stay_tied_through_payload_and_aggregation() -> None:
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    model[1].weight = model[0].weight
    assert len(list(model.parameters())) == 1
    bs = _bs(model)
    payload = bs.payload()
    assert len(payload["parameters"]) == 1
    update = [torch.ones(4, 4)]
    bs.aggregate([ReceivedUpdate(0, update, 1)])
    assert bs.model[0].weight is bs.model[1].weight
    receiver = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    receiver[1].weight = receiver[0].weight
    load_parameters(receiver, bs.payload()["parameters"])
    assert receiver[0].weight is receiver[1].weight
    torch.testing.assert_close(receiver[1].weight.detach(), bs.model[0].weight.detach())


def test_payload_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        load_parameters(nn.Linear(4, 2), [torch.zeros(3, 4), torch.zeros(2)])
    with pytest.raises(ValueError, match="1 parameters"):
        load_parameters(nn.Linear(4, 2), [torch.zeros(2, 4)])


def test_flat_view_only_for_tensors_back_to_back_in_one_storage() -> None:
    from fedwave.server.aggregate import flat_view

    flat = torch.arange(12.0)
    a, b, c = torch.split(flat, [2, 4, 6])
    view = flat_view([a, b.view(2, 2), c])
    assert view is not None and torch.equal(view, flat)
    assert flat_view([a, c]) is None  # a gap
    assert flat_view([b, a]) is None  # out of order
    assert flat_view([a, b.clone()]) is None  # another storage
    assert flat_view([flat[::2]]) is None  # not contiguous
    assert flat_view([a, b.double()]) is None
    assert flat_view([]) is None
    from fedwave.codecs import get_codec

    for spec in ("fp32", "fp16"):  # what the BS aggregates: a decoded payload's tensors, one view
        codec = get_codec(spec)
        sent = [torch.randn(4, 3), torch.randn(3), torch.randn(2, 2, 2)]
        got = codec.decode(codec.encode(sent, rng=torch.Generator()))
        flat = flat_view(got)
        assert flat is not None and torch.equal(flat, torch.cat([t.reshape(-1) for t in got]))


def test_weighted_mean_of_payload_views_is_the_same_as_of_separate_tensors() -> None:
    """One add per update over its back-to-back tensors gives the per-tensor additions' bits."""
    from fedwave.server.aggregate import scaled_sum

    gen = torch.Generator().manual_seed(5)
    sizes, shapes = [12, 3, 30], [(4, 3), (3,), (5, 6)]
    updates = []
    for k in range(7):
        flat = torch.randn(45, generator=gen) * 10.0 ** (k - 3)
        updates.append([t.view(s) for t, s in zip(torch.split(flat, sizes), shapes)])
    weights = [float(w) for w in torch.rand(7, generator=gen)]
    weights[2] = 0.0
    fast = scaled_sum(updates, weights, 1.7)
    slow = scaled_sum([[t.clone() for t in u] for u in updates], weights, 1.7)  # no common storage
    by_hand = []
    for j, shape in enumerate(shapes):
        acc = torch.zeros(shape, dtype=torch.float64)
        for u, w in zip(updates, weights):
            acc += w / 1.7 * u[j].double()
        by_hand.append(acc.float())
    for f, s, h, shape in zip(fast, slow, by_hand, shapes):
        assert f.shape == shape and f.dtype == torch.float32
        assert torch.equal(f, s)
        assert torch.allclose(f, h, rtol=1e-6, atol=0.0)
    assert any(float(f.abs().max()) > 1.0 for f in fast)


def test_updates_of_other_shapes_are_refused_not_broadcast_or_reinterpreted() -> None:
    """Same element counts, other shapes ((4, 3) against (3, 4)): a clear error through the flat path
    (payload views) and through the per-tensor path alike, never a transposed or broadcast sum."""
    from fedwave.server.aggregate import scaled_sum

    a = list(torch.split(torch.arange(15.0), [12, 3]))
    a = [a[0].view(4, 3), a[1]]
    b = list(torch.split(torch.arange(15.0), [12, 3]))
    b = [b[0].view(3, 4), b[1]]
    for pair in ([a, b], [[t.clone() for t in a], [t.clone() for t in b]]):
        with pytest.raises(ValueError, match="update 1 has tensor shapes"):
            scaled_sum(pair, [1.0, 1.0], 2.0)
    with pytest.raises(ValueError, match="update 1 has tensor shapes"):
        scaled_sum([[torch.ones(3)], [torch.ones(1)]], [1.0, 1.0], 2.0)  # would broadcast
