"""The written-out convolution-chain step (``fedwave.engine.convchain``) is autograd's SGD step.

Each case takes a few ``conv_step`` steps of one UE and the same steps through ``torch.autograd`` on the
module (mean cross-entropy, optional global-norm clipping that binds), and compares every parameter.
The chains cover the zoo's ``cnn`` and ``convnet`` on MNIST- and digits-sized images and a chain with
the geometry the step must pass through unchanged (strides, asymmetric padding, dilation, groups, a
first layer with three input channels, pooling with padding, stride 1 and ``ceil_mode``, layers without
bias). Inputs are mostly zero pixels and the convolution biases positive, so max-pooling meets ties
(equal ReLU outputs over blank regions): the gradient must go where autograd sends it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedwave.engine.batched import TOLERANCE, written_out_alone
from fedwave.engine.chain import Conv, Pool, linear_chain
from fedwave.engine.convchain import conv_chain, conv_step
from fedwave.models.zoo import build_model

LR = 0.3


def _geometry_chain() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), bias=False),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=1, padding=1),
        nn.Conv2d(8, 12, 3, dilation=2, groups=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(12 * 4 * 7, 20, bias=False),
        nn.ReLU(),
        nn.Linear(20, 5),
    )


def _first_layer_grouped_chain() -> nn.Module:
    """The first convolution grouped and dilated: its weight gradient comes from oneDNN's backward."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, groups=3, dilation=2, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 7 * 7, 5),
    )


def _sparse_images(gen: torch.Generator, b: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Images that are zero outside a random blob: blank regions give equal activations (pooling ties)."""
    x = torch.rand((b, *shape), generator=gen)
    return x * (torch.rand((b, *shape), generator=gen) < 0.3)


def _autograd_steps(
    model: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor], clip: float
) -> dict[str, torch.Tensor]:
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    for x, y in zip(xs, ys):
        logits = torch.func.functional_call(model, params, (x,))
        grads = torch.autograd.grad(nn.functional.cross_entropy(logits, y), list(params.values()))
        if clip > 0:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            grads = tuple(g * min(1.0, clip / (float(norm) + 1e-12)) for g in grads)
        params = {n: (p - LR * g).detach().requires_grad_() for (n, p), g in zip(params.items(), grads)}
    return {n: p.detach() for n, p in params.items()}


def _case(model: nn.Module, shape: tuple[int, ...], classes: int, clip: float) -> None:
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(0.05, 0.2, generator=gen)  # positive: blank regions tie after the ReLU
    layers = conv_chain(model, shape)
    assert layers is not None
    sizes = [7, 7, 3]  # a short last batch, as a UE's last step often is
    xs = [_sparse_images(gen, b, shape) for b in sizes]
    ys = [torch.randint(0, classes, (b,), generator=gen) for b in sizes]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    ours = {n: p.clone() for n, p in start.items()}
    for x, y in zip(xs, ys):
        conv_step(layers, ours, x, y, LR, clip)
    ref = _autograd_steps(model, xs, ys, clip)
    moved = max(float((ref[n] - start[n]).abs().max()) for n in start)
    assert moved > 100 * TOLERANCE, "the steps barely moved the model: the comparison would prove little"
    for n in start:
        assert ours[n].shape == start[n].shape
        worst = float((ours[n] - ref[n]).abs().max())
        assert worst <= TOLERANCE, (n, worst)


@pytest.mark.parametrize("clip", [0.0, 0.05])
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
@pytest.mark.parametrize("name", ["cnn", "convnet"])
def test_zoo_convolution_chains_step_like_autograd(name: str, shape: tuple[int, ...], clip: float) -> None:
    torch.manual_seed(0)
    _case(build_model(name, shape, 10), shape, 10, clip)


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_any_geometry_steps_like_autograd(clip: float) -> None:
    torch.manual_seed(1)
    _case(_geometry_chain(), (3, 15, 14), 5, clip)
    _case(_first_layer_grouped_chain(), (3, 14, 14), 5, clip)


def test_clipping_binds_in_the_cases_above() -> None:
    """clip = 0.05 changes the result by far more than the tolerance: the clipped cases test clipping."""
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10)
    layers = conv_chain(model, (1, 8, 8))
    assert layers is not None
    gen = torch.Generator().manual_seed(2)
    x, y = _sparse_images(gen, 7, (1, 8, 8)), torch.randint(0, 10, (7,), generator=gen)
    free = {n: p.detach().clone() for n, p in model.named_parameters()}
    clipped = {n: p.clone() for n, p in free.items()}
    conv_step(layers, free, x, y, LR, 0.0)
    conv_step(layers, clipped, x, y, LR, 0.05)
    assert max(float((free[n] - clipped[n]).abs().max()) for n in free) > 100 * TOLERANCE


def test_which_models_are_convolution_chains() -> None:
    chain = conv_chain(build_model("cnn", (1, 28, 28), 10), (1, 28, 28))
    assert chain is not None
    # each ReLU then pooling is read as pooling then ReLU (the same function and gradient)
    assert [type(x).__name__ if not isinstance(x, str) else x for x in chain] == [
        "Conv", "Pool", "relu", "Conv", "Pool", "relu", "flatten", "Linear", "relu", "Linear",
    ]  # fmt: skip
    conv = chain[0]
    assert isinstance(conv, Conv) and conv.padding == (2, 2) and conv.weight == "features.0.weight"
    pool = chain[1]
    assert isinstance(pool, Pool) and pool.kernel == (2, 2) and pool.stride == (2, 2)
    assert written_out_alone(build_model("cnn", (1, 28, 28), 10), (1, 28, 28))
    assert conv_chain(build_model("convnet", (1, 8, 8), 10), (1, 8, 8)) is not None
    # not chains: BatchNorm and skips (resnet), sigmoids (lenet), 1-D convolutions, no convolution
    for name, shape in [("resnet", (1, 8, 8)), ("lenet", (1, 28, 28)), ("cnn", (1, 40)), ("2nn", (1, 8, 8))]:
        assert conv_chain(build_model(name, shape, 10), shape) is None, name
    odd = [
        nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), nn.Flatten(), nn.Linear(128, 3)),
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten(), nn.Linear(128, 3)),
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2, return_indices=True), nn.Flatten()),
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(128, 3)),
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(128, 3), nn.Flatten()),
        nn.Sequential(nn.Flatten(), nn.Linear(64, 64)),  # no convolution
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()),  # never flattened
    ]
    for model in odd:
        assert conv_chain(model, (1, 8, 8)) is None, model
    # geometry as torch also takes it: an empty pooling stride is the kernel, a one-element list a pair
    loose = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=[1]),  # type: ignore[arg-type]
        nn.MaxPool2d([2], stride=[]),  # type: ignore[arg-type]
        nn.Flatten(),
        nn.Linear(32, 3),
    )
    read = conv_chain(loose, (1, 8, 8))
    assert read is not None and read[0] == Conv("0.weight", "0.bias", (1, 1), (1, 1), (1, 1), 1)
    assert read[1] == Pool((2, 2), (2, 2), (0, 0), (1, 1), False)
    _case(loose, (1, 8, 8), 3, 0.0)  # and it steps like autograd
    # one module object at two places runs twice but is listed once by named_children: refused
    relu = nn.ReLU()
    shared = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), relu, nn.Conv2d(2, 2, 3, padding=1), relu)
    assert conv_chain(nn.Sequential(*shared, nn.Flatten(), nn.Linear(128, 3)), (1, 8, 8)) is None
    twice = nn.Linear(16, 16)
    assert linear_chain(nn.Sequential(nn.Linear(64, 16), twice, nn.ReLU(), twice), (64,)) is None
    assert linear_chain(nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3)), (64,)) is not None
    hooked = build_model("cnn", (1, 8, 8), 10)
    hooked.get_submodule("features.1").register_forward_hook(lambda _m, _i, o: o * 2)
    assert conv_chain(hooked, (1, 8, 8)) is None  # a hook changes what the layer computes
