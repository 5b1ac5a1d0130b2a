"""Stacked Linear/ReLU chains stepped with a written-out backward pass (no autograd, no ``vmap``).

For a model that is a chain of ``nn.Linear`` and ``nn.ReLU`` layers (flattening allowed before the first
``Linear``), such as the zoo's ``mlp`` and ``2nn``, the batched executor's SGD step of ``U`` UEs is
written out over parameters stacked along a leading UE axis, each weight kept ``(U, out, in)`` as the
module holds it. With ``a_0`` the flattened inputs ``(U, b, d)`` and ``a_i`` the output of layer ``i``:

- forward: ``a_i = a_{i-1} W_i^T + b_i`` (one ``baddbmm``) or ``a_i = max(a_{i-1}, 0)``;
- loss: per UE the mean cross-entropy of the logits ``z`` over its ``b`` samples, or the weighted sum
  with per-sample weights ``w`` (zero-padded batches, see :mod:`fedwave.engine.batched`); its gradient
  with respect to ``z`` is ``(softmax(z) - onehot(y)) * w`` with ``w = 1/b`` for the plain mean;
- backward: ``dW_i = g_i^T a_{i-1}`` (``(U, out, in)``, the weight's own layout), ``db_i`` the sum of
  ``g_i`` over the batch, ``g_{i-1} = g_i W_i`` through a ``Linear`` and ``g * [a_i > 0]`` through a ReLU
  (the rule of torch's ReLU backward, which tests the output);
- step: ``p <- p - lr g``. Without clipping each weight's step is fused into its gradient's product
  (``W.baddbmm_(g^T, a, alpha=-lr)``, after ``g W`` has used the old weights): ``dW`` is never written
  out and read back, which halves a step's memory traffic. With per-UE global-norm clipping the
  gradients are formed first (the norm needs all of them), clipped, then applied.

This is the arithmetic autograd performs for the same layers, with the same products; sums may run in
another order (float rounding only, bounded by :data:`fedwave.engine.batched.TOLERANCE` in the tests).
Skipping autograd's graph and ``vmap``'s batching rules takes the per-step overhead of a small model from
about 10 ms to well under 1 ms; the products themselves are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn


@dataclass(frozen=True)
class Linear:
    """A ``nn.Linear`` of the chain: its parameters' names (``bias`` None when it has none)."""

    weight: str
    bias: str | None


#: A layer of a chain: a :class:`Linear`, or None for a ReLU.
Layer = Linear | None


@dataclass(frozen=True)
class Conv:
    """A ``nn.Conv2d`` with zero padding given in pixels: its parameters' names and geometry."""

    weight: str
    bias: str | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


@dataclass(frozen=True)
class Pool:
    """A ``nn.MaxPool2d`` (without returned indices): its geometry."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool


#: What :func:`leaves` reads a module as: "relu", "flatten", or a layer with parameters or geometry.
Leaf = str | Linear | Conv | Pool


def linear_chain(model: nn.Module, sample_shape: Sequence[int]) -> list[Layer] | None:
    """The layers of ``model`` when it is a Linear/ReLU chain on inputs of per-sample ``sample_shape``.

    Returns None for any other model: other layers, a ``Linear`` applied before the input is flattened
    (unless the samples are vectors already), no ``Linear`` at all, or parameters outside the chain.
    """
    items = leaves(model)
    if items is None:
        return None
    layers: list[Layer] = []
    flat = len(sample_shape) == 1
    for item in items:
        if item == "flatten":
            flat = True
        elif isinstance(item, Linear):
            if not flat:
                return None
            layers.append(item)
        elif item == "relu":
            layers.append(None)
        else:  # a convolution or pooling layer: not a Linear/ReLU chain
            return None
    covered = {n for layer in layers if layer is not None for n in (layer.weight, layer.bias) if n}
    if not any(layer is not None for layer in layers) or covered != {n for n, _ in model.named_parameters()}:
        return None
    return layers


def leaves(module: nn.Module, prefix: str = "") -> list[Leaf] | None:
    """The forward order of ``module``'s layers, parameter names prefixed by ``prefix``; None when a
    module is none of ``nn.Sequential``, the zoo's flatten container, ``nn.Linear``, ``nn.ReLU``,
    ``nn.Identity``, ``nn.Flatten()``, a ``nn.Conv2d`` with numeric zero padding or a ``nn.MaxPool2d``,
    and for the whole model (``prefix`` empty) when one module object sits at two places of it (a ReLU
    or a tied layer used twice, which ``named_children`` would list once) or any module has hooks or a
    ``forward`` of its own."""
    from fedwave.models.zoo import _Sequential

    if not prefix and not _plain_tree(module):
        return None

    def name(child: str) -> str:
        return f"{prefix}.{child}" if prefix else child

    kind = type(module)
    if kind is nn.Sequential:
        out: list[Leaf] = []
        for child, sub in module.named_children():
            part = leaves(sub, name(child))
            if part is None:
                return None
            out += part
        return out
    if kind is _Sequential:  # features -> flatten(x, 1) -> classifier
        features = leaves(module.features, name("features"))  # type: ignore[arg-type]
        classifier = leaves(module.classifier, name("classifier"))  # type: ignore[arg-type]
        if features is None or classifier is None:
            return None
        return [*features, "flatten", *classifier]
    if kind is nn.Linear:
        return [Linear(name("weight"), name("bias") if module.bias is not None else None)]
    if kind is nn.ReLU:
        return ["relu"]
    if kind is nn.Identity:
        return []
    if kind is nn.Flatten and module.start_dim == 1 and module.end_dim == -1:
        return ["flatten"]
    if kind is nn.Conv2d:
        conv = cast(nn.Conv2d, module)
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            return None
        return [
            Conv(
                name("weight"),
                name("bias") if conv.bias is not None else None,
                _pair(conv.stride),
                _pair(conv.padding),
                _pair(conv.dilation),
                conv.groups,
            )
        ]
    if kind is nn.MaxPool2d:
        pool = cast(nn.MaxPool2d, module)
        if pool.return_indices:
            return None
        kernel = _pair(pool.kernel_size)
        stride = _pair(pool.stride) if pool.stride else kernel  # torch reads None and [] as the kernel
        return [Pool(kernel, stride, _pair(pool.padding), _pair(pool.dilation), bool(pool.ceil_mode))]
    return None


def _plain_tree(model: nn.Module) -> bool:
    """Whether every module object of ``model`` occurs once in its tree, none has forward hooks and none
    has its own ``forward`` (one assigned to the object, which its class's layer rule would not describe)."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        m = stack.pop()
        if id(m) in seen or m._forward_hooks or m._forward_pre_hooks or "forward" in vars(m):
            return False
        seen.add(id(m))
        stack.extend(child for child in m._modules.values() if child is not None)
    return True


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    """A module's int-or-pair geometry argument as a pair of ints (a one-element sequence counts twice)."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[-1]))


def loss_gradient(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``softmax(z) - onehot(y)`` over the last axis: the gradient of each sample's cross-entropy with
    respect to its logits ``z`` (a new tensor, to be scaled by the caller's sample weights)."""
    g = torch.softmax(logits, dim=-1)
    minus_one = torch.full((*y.shape, 1), -1.0, dtype=g.dtype, device=g.device)
    return g.scatter_add_(-1, y.unsqueeze(-1), minus_one)


def chain_forward(
    layers: Sequence[Layer], params: dict[str, torch.Tensor], h: torch.Tensor
) -> list[torch.Tensor]:
    """Every layer's input ``(U, b, in)`` from the flattened inputs ``h``, then the logits (last)."""
    acts = [h]
    for layer in layers:
        acts.append(torch.relu(acts[-1]) if layer is None else _affine(acts[-1], params, layer))
    return acts


def chain_step(
    layers: Sequence[Layer],
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor | None,
    lr: float,
    clip: float,
) -> None:
    """One SGD step of every UE of the stack, on ``params`` (weights ``(U, out, in)``).

    A parameter may also be given once for all UEs (the module's own shape: the server's model before
    the first step): its products then run over all ``U b`` samples at once, and the step replaces it
    in ``params`` by the stacked ``(U, ...)`` result. Stacked parameters are updated in place.

    Args:
        layers: the chain (:func:`linear_chain`).
        params: the parameters by name, in the model's ``named_parameters`` order.
        x: inputs ``(U, b, ...)``; y: labels ``(U, b)``.
        w: per-sample loss weights ``(U, b)``, or None for each UE's mean over its ``b`` samples.
        lr: learning rate; clip: per-UE global L2 norm bound of the gradient (0: none).
    """
    u, b = y.shape
    acts = chain_forward(layers, params, x.reshape(u, b, -1))  # acts[i]: the input of layer i
    g = loss_gradient(acts[-1], y)
    if w is None:
        g.mul_(1.0 / b)
    else:
        g.mul_(w.unsqueeze(2).to(g.dtype))
    first = next(i for i, layer in enumerate(layers) if layer is not None)
    fused = clip <= 0  # no clipping: each weight's step is one product into it, dW never stored
    grads: dict[str, torch.Tensor] = {}
    for i in range(len(layers) - 1, first - 1, -1):
        layer = layers[i]
        if layer is None:
            g = g * (acts[i + 1] > 0)
            continue
        weight = params[layer.weight]
        shared = weight.dim() == 2
        below = g  # the gradient at this layer's input, through the old weights
        if i > first:
            below = torch.mm(g.reshape(u * b, -1), weight).view(u, b, -1) if shared else torch.bmm(g, weight)
        if fused and shared:  # W_k = W - lr g_k^T a_k, written once into the new stack
            stack = weight.expand(u, -1, -1)
            params[layer.weight] = torch.baddbmm(stack, g.transpose(1, 2), acts[i], alpha=-lr)
        elif fused:
            weight.baddbmm_(g.transpose(1, 2), acts[i], alpha=-lr)  # W <- W - lr g^T a
        else:
            grads[layer.weight] = torch.bmm(g.transpose(1, 2), acts[i])
        if layer.bias is not None:
            grads[layer.bias] = g.sum(dim=1)
        g = below
    if not fused:
        grads = {n: grads[n] for n in params}  # the model's order: the norm sums in it
        clip_stacked_(grads, clip)
    for n, grad in grads.items():
        p = params[n]
        if p.dim() == grad.dim() - 1:  # shared: the step makes the stack
            params[n] = torch.add(p.expand_as(grad), grad, alpha=-lr)
        else:
            p.add_(grad, alpha=-lr)


def _affine(h: torch.Tensor, params: dict[str, torch.Tensor], layer: Linear) -> torch.Tensor:
    """``h W^T + b`` for inputs ``h`` ``(U, b, in)``, stacked or shared parameters."""
    weight = params[layer.weight]
    bias = None if layer.bias is None else params[layer.bias]
    if weight.dim() == 2:  # shared: one product over every UE's samples
        u, b, _ = h.shape
        flat = h.reshape(u * b, -1)
        out = torch.mm(flat, weight.t()) if bias is None else torch.addmm(bias, flat, weight.t())
        return out.view(u, b, -1)
    if bias is None:
        return torch.bmm(h, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


def clip_stacked_(grads: dict[str, torch.Tensor], max_norm: float) -> None:
    """Per UE (dim 0), scale the gradients so their global L2 norm is at most ``max_norm`` (in place)."""
    per_tensor = [torch.linalg.vector_norm(g.float().reshape(g.shape[0], -1), dim=1) for g in grads.values()]
    norm = torch.linalg.vector_norm(torch.stack(per_tensor, dim=1), dim=1).double()
    factor = torch.clamp(max_norm / (norm + 1e-12), max=1.0).float()
    for g in grads.values():
        g.mul_(factor.reshape(-1, *([1] * (g.dim() - 1))))
