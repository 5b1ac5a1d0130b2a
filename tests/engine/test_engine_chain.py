"""The written-out Linear/ReLU step (``fedwave.engine.chain``) is autograd's SGD step, UE by UE.

Each case builds a stack of UEs with different parameters and batches, takes one ``chain_step`` and
compares every UE's result with ``torch.autograd`` on that UE's own module (mean or weighted
cross-entropy, optional global-norm clipping), from stacked and from shared (first-step) parameters.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedwave.engine.chain import Linear, chain_step, linear_chain
from fedwave.models.zoo import build_model

LR = 0.3


def _stack_of(model: nn.Module, count: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``count`` perturbed copies of the model's parameters, stacked (UE k: start + noise_k)."""
    return {
        n: p.detach().unsqueeze(0) + 0.05 * torch.randn((count, *p.shape), generator=gen)
        for n, p in model.named_parameters()
    }


def _reference(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    k: int,
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor | None,
    clip: float,
) -> dict[str, torch.Tensor]:
    """UE k's parameters after one autograd SGD step on its own copy of ``model``."""
    own = {n: (p[k] if p.dim() > q.dim() else p).clone().requires_grad_() for (n, p), q in
           zip(params.items(), model.parameters())}  # fmt: skip
    logits = torch.func.functional_call(model, own, (x[k],))
    per = nn.functional.cross_entropy(logits, y[k], reduction="none")
    loss = per.mean() if w is None else (per * w[k]).sum()
    grads = torch.autograd.grad(loss, list(own.values()))
    if clip > 0:
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        grads = tuple(g * min(1.0, clip / (float(norm) + 1e-12)) for g in grads)
    return {n: (p - LR * g).detach() for (n, p), g in zip(own.items(), grads)}


def _case(name: str, weighted: bool, clip: float, shared: bool, bias: bool = True) -> float:
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    model = build_model(name, (1, 8, 8), 10)
    if not bias:
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32, bias=False), nn.ReLU(), nn.Linear(32, 10))
    layers = linear_chain(model, (1, 8, 8))
    assert layers is not None
    u, b = 4, 6
    params = (
        {n: p.detach().clone() for n, p in model.named_parameters()} if shared else _stack_of(model, u, gen)
    )
    x = torch.randn(u, b, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (u, b), generator=gen)
    w = None
    if weighted:  # UE 1 has 4 real samples, UE 3 none (a UE without this step)
        w = torch.full((u, b), 1.0 / b)
        w[1, 4:] = 0.0
        w[1, :4] = 0.25
        w[3] = 0.0
    want = [_reference(model, params, k, x, y, w, clip) for k in range(u)]
    before = {n: p.clone() for n, p in params.items()}
    chain_step(layers, params, x, y, w, LR, clip)
    worst, moved = 0.0, 0.0
    for n, p in params.items():
        assert p.shape == (u, *before[n].shape[-p.dim() + 1 :])
        for k in range(u):
            worst = max(worst, float((p[k] - want[k][n]).abs().max()))
            start = before[n][k] if before[n].dim() == p.dim() else before[n]
            moved = max(moved, float((p[k] - start).abs().max()))
    assert moved > 1e-3  # the step did something: equal to a no-op it would prove nothing
    if weighted:  # the UE without a step keeps its parameters exactly
        for n, p in params.items():
            start = before[n][3] if before[n].dim() == p.dim() else before[n]
            assert torch.equal(p[3], start)
    return worst


@pytest.mark.parametrize("name", ["mlp", "2nn"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("clip", [0.0, 0.05])
@pytest.mark.parametrize("shared", [False, True])
def test_chain_step_is_autograds_sgd_step(name: str, weighted: bool, clip: float, shared: bool) -> None:
    assert _case(name, weighted, clip, shared) <= 2e-7


def test_chain_without_biases() -> None:
    assert _case("mlp", False, 0.0, True, bias=False) <= 2e-7
    assert _case("mlp", True, 0.05, False, bias=False) <= 2e-7


def test_which_models_are_chains() -> None:
    mlp = build_model("mlp", (1, 8, 8), 10)
    assert linear_chain(mlp, (1, 8, 8)) == [
        Linear("classifier.0.weight", "classifier.0.bias"),
        None,
        Linear("classifier.2.weight", "classifier.2.bias"),
    ]
    assert linear_chain(build_model("2nn", (1, 8, 8), 10), (1, 8, 8)) is not None
    for conv in ("cnn", "convnet", "resnet"):
        assert linear_chain(build_model(conv, (1, 8, 8), 10), (1, 8, 8)) is None
    # a Linear on unflattened images acts on the last axis only: not this chain
    assert linear_chain(nn.Sequential(nn.Linear(8, 10)), (1, 8, 8)) is None
    assert linear_chain(nn.Sequential(nn.Linear(8, 10)), (8,)) is not None
    assert linear_chain(nn.Sequential(nn.Flatten(), nn.Tanh(), nn.Linear(64, 10)), (1, 8, 8)) is None
    assert linear_chain(nn.Sequential(nn.Flatten(), nn.ReLU()), (1, 8, 8)) is None  # no Linear
