"""Sample-level DP-SGD of one UE of a convolution chain, backward pass written out.

:class:`~fedwave.users.dpsgd.UserDPSGD` (FedAvg) takes, per local step, a Poisson batch, every example's
gradient (``vmap`` of ``grad`` over the batch), clips each to L2 norm C, sums, adds N(0, (z C)^2) per
coordinate and divides by the expected batch size q n. For MNIST ``cnn`` that cost 38 to 46 ms per
example on the 2-core machine (one thread; ``python benchmarks/dpsgd_conv.py``), some 20 times a
non-private written-out step's cost per example. For a
model that is a convolution chain (:func:`fedwave.engine.convchain.conv_chain`: the zoo's ``cnn``, and
``convnet`` on images) :func:`train_dpsgd_conv` computes the same step with the products of
:func:`~fedwave.engine.convchain.conv_step`:

- one forward pass of the whole batch (:func:`~fedwave.engine.convchain.conv_forward`);
- each example's own loss gradient at the logits (``softmax(z) - onehot(y)``, no ``1/b``), passed down
  the chain once for the batch: an example's gradient at any layer depends on that example alone;
- a ``Linear`` layer's example gradient is the outer product ``g_s a_s^T``: its squared norm is
  ``|g_s|^2 |a_s|^2`` (and ``|g_s|^2`` for the bias), and the clipped sum ``(f * g)^T a`` is one product,
  ``f`` the examples' clip factors; no example's weight gradient is formed;
- a convolution's example gradients are formed, as one batched product of the output gradient
  ``(b, O, L)`` with the input's windows ``(b, L, C k_h k_w)`` (``L`` output pixels): as many
  multiply-adds as the batch's weight gradient. Their squared norms add to the examples' norms, and the
  clipped sum weights them by ``f``. The bias's example gradient is the output gradient summed over the
  pixels;
- the clip factors are :func:`fedwave.privacy.dp.dpsgd.clip_per_example`'s: ``C / norm * (1 - 1e-6)``
  above C, else 1 (each layer's sum of squares in the parameters' precision, the layers' sums added in
  float64; the reference squares every value in float64);
- the step is the sequential user's arithmetic: ``p <- p - lr ((sum + noise) / (q n))``.

The UE draws from its generator in the sequential user's order: the batch's uniforms, the dropout seed
(drawn whenever the batch is not empty, though a chain has no dropout to use it), then the noise. So its
steps see the same batches and noise; what differs is float rounding (the norms formed from factors or
from batched products, the sums in other orders). From one payload and generator, one UE's update is
within :data:`fedwave.engine.batched.TOLERANCE` of the sequential user's (1.5e-8 for MNIST ``cnn``), and
the generator ends in the same state (``tests/engine/test_engine_dpconv.py``). Over whole runs such
differences can grow from round to round as with any change of rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional

from fedwave.engine.chain import Conv, Leaf, Linear, loss_gradient
from fedwave.engine.convchain import conv_forward, pass_back, window_view
from fedwave.engine.dpchain import step_draws
from fedwave.users.base import Payload, SharedData
from fedwave.users.dpsgd import UserDPSGD

_aten = torch.ops.aten


def dp_conv_chain(layers: Sequence[Leaf] | None) -> bool:
    """Whether :func:`train_dpsgd_conv` takes the chain ``layers``: every convolution ungrouped (its
    example gradients are formed from the input's windows)."""
    return layers is not None and all(leaf.groups == 1 for leaf in layers if isinstance(leaf, Conv))


def train_dpsgd_conv(
    user: UserDPSGD, layers: Sequence[Leaf], payload: Payload, generator: torch.Generator
) -> SharedData:
    """The shared data of ``user.compute_local_updates(payload, rng=generator)`` (FedAvg) for a model that
    is the convolution chain ``layers`` (:func:`fedwave.engine.convchain.conv_chain`, with
    :func:`dp_conv_chain`). The user's query counter advances by one, as in a sequential query."""
    model = user.model
    user._synchronize(payload)  # the server's parameters into the working model
    names = [n for n, _ in model.named_parameters()]
    start = [p.detach().clone() for p in model.parameters()]
    params = {n: s.clone() for n, s in zip(names, start)}
    user.counted_queries += 1
    n = user.num_data_points
    q, steps = user._schedule(n)
    lr = user.cfg.local_learning_rate
    clip = user.dp_clip
    for _ in range(steps):
        idx, noise = step_draws(user, q, [s.shape for s in start], generator)
        grads: dict[str, torch.Tensor] = {}  # an empty batch: the noise alone
        if idx.numel() > 0:
            at = idx.to(user.inputs.device)
            grads = clipped_gradient_sum(layers, params, user.inputs[at], user.labels[at], clip)
        expected = q * n  # the expected batch size, not the realised one
        for j, name in enumerate(names):  # the sequential arithmetic: p <- p - lr ((sum + noise) / (q n))
            p = params[name]
            total = grads.get(name)
            if noise is not None:
                e = noise[j].to(device=p.device, dtype=p.dtype)
                total = e if total is None else total + e
            if total is not None:
                p.add_(total / expected, alpha=-lr)
    y = user.labels
    return {
        "gradients": [params[k] - s for k, s in zip(names, start)],
        "buffers": None,
        "metadata": user._metadata(y, int(y.shape[0]), None),
    }


def clipped_gradient_sum(
    layers: Sequence[Leaf],
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    clip: float | None,
) -> dict[str, torch.Tensor]:
    """The sum over the batch of each example's cross-entropy gradient, each clipped to L2 norm ``clip``
    over all parameters (None: not clipped), by parameter name in the order of ``params``.

    Args:
        layers: the chain; params: its parameters by name (the module's shapes).
        x: inputs ``(b, C, H, W)`` with b >= 1; y: labels ``(b,)``.
    """
    b = int(y.shape[0])
    acts, indices = conv_forward(layers, params, x)
    g = loss_gradient(acts[-1], y)  # each example's own loss: no 1/b
    first = next(i for i, layer in enumerate(layers) if isinstance(layer, (Conv, Linear)))
    sq = torch.zeros(b, dtype=torch.float64, device=x.device)  # each example's squared gradient norm
    at_linear: dict[int, torch.Tensor] = {}  # the gradient at each Linear's output, per example
    at_conv: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}  # example weight and bias gradients
    for i in range(len(layers) - 1, first - 1, -1):
        layer, a = layers[i], acts[i]
        if isinstance(layer, Linear):
            at_linear[i] = g
            g_sq = torch.linalg.vecdot(g, g).double()
            sq += g_sq * torch.linalg.vecdot(a, a).double()
            if layer.bias is not None:
                sq += g_sq
            if i > first:
                g = torch.mm(g, params[layer.weight])
        elif isinstance(layer, Conv):
            weight = params[layer.weight]
            per_w = torch.bmm(g.flatten(2), _windows(a, weight.shape, layer))  # (b, O, C k_h k_w)
            per_b = g.sum(dim=(2, 3)) if layer.bias is not None else None
            flat = per_w.flatten(1)
            sq += torch.linalg.vecdot(flat, flat).double()
            if per_b is not None:
                sq += torch.linalg.vecdot(per_b, per_b).double()
            at_conv[i] = (per_w, per_b)
            if i > first:
                g = _aten.convolution_backward(
                    g, a, weight, None, layer.stride, layer.padding, layer.dilation, False, [0, 0],
                    layer.groups, [True, False, False],
                )[0]  # fmt: skip
        else:
            g = pass_back(layer, g, a, acts[i + 1], indices.get(i))
    if clip is None:
        factors = torch.ones(b, dtype=torch.float64, device=x.device)
    else:
        norms = sq.sqrt()
        factors = torch.where(norms > clip, clip / norms * (1.0 - 1e-6), torch.ones_like(norms))
    f = factors.to(acts[-1].dtype)
    grads: dict[str, torch.Tensor] = {}
    for i, g_out in at_linear.items():
        layer = layers[i]
        assert isinstance(layer, Linear)
        scaled = g_out * f.unsqueeze(1)
        grads[layer.weight] = torch.mm(scaled.t(), acts[i])
        if layer.bias is not None:
            grads[layer.bias] = scaled.sum(dim=0)
    for i, (per_w, per_b) in at_conv.items():
        layer = layers[i]
        assert isinstance(layer, Conv)
        shape = params[layer.weight].shape
        grads[layer.weight] = torch.mm(f.unsqueeze(0), per_w.flatten(1)).view(shape)
        if layer.bias is not None and per_b is not None:
            grads[layer.bias] = torch.mv(per_b.t(), f)
    return {n: grads[n] for n in params}


def _windows(a: torch.Tensor, shape: torch.Size, conv: Conv) -> torch.Tensor:
    """The input windows of convolution ``conv`` (weight ``shape``) as ``(b, L, C k_h k_w)``, ``L`` its
    output pixels (row-major), ``C k_h k_w`` in the weight's order."""
    kernel = (int(shape[2]), int(shape[3]))
    if conv.dilation != (1, 1):
        return functional.unfold(a, kernel, conv.dilation, conv.padding, conv.stride).transpose(1, 2)
    view = window_view(a, kernel, conv)  # (b, C, H, W, k_h, k_w)
    b, c, h, w = view.shape[:4]
    # laid out (b, C k_h k_w, L) in memory: the strided copy runs along the output pixels (about 3 times
    # faster than F.unfold at MNIST cnn's second layer), and the product reads it transposed
    return view.permute(0, 1, 4, 5, 2, 3).reshape(b, c * kernel[0] * kernel[1], h * w).transpose(1, 2)
