"""``fedwave.engine.optim.SGD`` does the arithmetic of ``torch.optim.SGD`` bit for bit."""

from __future__ import annotations

import pytest
import torch

from fedwave.engine.optim import SGD


def _trajectory(make: str, momentum: float, nesterov: bool, steps: int = 6) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    params = [
        torch.randn(5, 3, generator=gen, requires_grad=True),
        torch.randn(4, generator=gen, requires_grad=True),
    ]
    opt = (
        SGD(params, lr=0.3, momentum=momentum, nesterov=nesterov)
        if make == "fedwave"
        else torch.optim.SGD(params, lr=0.3, momentum=momentum, nesterov=nesterov)
    )
    for _ in range(steps):
        opt.zero_grad(set_to_none=False)
        loss = sum(((p - 1.0) ** 3).sum() for p in params)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.0, False), (0.9, False), (0.5, True)])
def test_sgd_matches_torch_bit_for_bit(momentum: float, nesterov: bool) -> None:
    ours = _trajectory("fedwave", momentum, nesterov)
    ref = _trajectory("torch", momentum, nesterov)
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    # and the trajectory moved (a no-op step would also be "equal" to an unchanged start)
    assert not torch.equal(ours[0], _trajectory("fedwave", momentum, nesterov, steps=0)[0])


def test_state_dict_loads_into_torch_and_back() -> None:
    p = [torch.ones(3, requires_grad=True)]
    ours = SGD(p, lr=0.1, momentum=0.9)
    p[0].grad = torch.tensor([1.0, 2.0, 3.0])
    ours.step()
    ref = torch.optim.SGD([torch.ones(3, requires_grad=True)], lr=0.1, momentum=0.9)
    ref.load_state_dict(ours.state_dict())
    assert torch.equal(ref.state_dict()["state"][0]["momentum_buffer"], torch.tensor([1.0, 2.0, 3.0]))
    back = SGD([torch.ones(3, requires_grad=True)], lr=0.1, momentum=0.9)
    back.load_state_dict(ref.state_dict())
    assert back.buffers[0] is not None and torch.equal(back.buffers[0], torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="parameters"):
        SGD([], lr=0.1).load_state_dict(ref.state_dict())
