"""One UE's SGD step, backward pass written out, for chains of convolutions, pooling and Linear layers.

A model that is a chain of ``nn.Conv2d`` (zero padding), ``nn.ReLU``, ``nn.MaxPool2d``, one flattening
and ``nn.Linear`` layers (the zoo's ``cnn`` and ``convnet`` on images) trains, under the batched executor,
a UE that is alone in its group (MNIST ``cnn``'s 6.6 MB of parameters exceed the stacking budget,
:data:`fedwave.engine.batched.STACK_BUDGET_BYTES`) through :func:`conv_step` instead of autograd. The
products are the ones autograd calls (``convolution``, ``convolution_backward``, ``addmm``/``mm``);
what the step saves is the work around them:

- a ``Linear`` weight's gradient is formed as ``g^T a``, in the weight's own ``(out, in)`` layout, and
  fused into the SGD step (``W.addmm_(g^T, a, alpha=-lr)``, after ``g W`` has used the old weight).
  Autograd forms it as ``a^T g``, the transposed layout (for MNIST ``cnn``'s first ``Linear``, 3136 x 512
  at b = 10, that product alone took 4.2 ms against 1.8 ms here), then writes it out and reads it back;
- the first convolution's weight gradient (its input gradient is never needed) is one ``mm`` over the
  padded input's windows (:func:`_first_weight_grad`): oneDNN's backward for MNIST ``cnn``'s first layer
  (one input channel) ran at under a tenth of the matmul rate;
- max-pooling runs forward on a channels-last copy of its input, whose kernel is several times faster
  than the channels-first one at these sizes (same maxima, same indices, ties included); its backward
  takes those indices with the channels-first input;
- a ReLU followed by max-pooling runs after it instead, on a quarter of the values (:func:`conv_chain`
  says why that is the same function and gradient);
- there is no autograd graph.

The loss gradient is ``(softmax(z) - onehot(y)) / b``; a ReLU's gradient is ``threshold_backward`` of its
output, as autograd's. With clipping, all gradients are formed first and clipped in the model's
parameter order. Results equal the sequential user's up to float rounding (bounded by
:data:`fedwave.engine.batched.TOLERANCE` in the tests). ``benchmarks/cnn_step_profile.py`` times both
steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional

from fedwave.engine.chain import Conv, Leaf, Linear, Pool, clip_stacked_, leaves, loss_gradient

_aten = torch.ops.aten


def conv_chain(model: torch.nn.Module, sample_shape: Sequence[int]) -> list[Leaf] | None:
    """The layers of ``model`` when it is a convolution chain on samples of shape ``sample_shape``.

    That is: image samples ``(C, H, W)``; at least one :class:`Conv`; convolutions and pooling (and
    ReLUs) only before the one flattening, ``Linear`` layers (and ReLUs) only after it; every parameter
    in a listed layer. None for any other model.
    """
    items = leaves(model)
    if items is None or len(sample_shape) != 3:
        return None
    flat = False
    for item in items:
        if item == "flatten":
            if flat:
                return None
            flat = True
        elif (isinstance(item, (Conv, Pool)) and flat) or (isinstance(item, Linear) and not flat):
            return None
    covered = {n for item in items if isinstance(item, (Conv, Linear)) for n in (item.weight, item.bias) if n}
    if not flat or not any(isinstance(item, Conv) for item in items):
        return None
    if covered != {n for n, _ in model.named_parameters()}:
        return None
    # ReLU then max-pooling = max-pooling then ReLU, gradient included: a positive maximum is the same
    # element of the window either way (the first, on ties), and a window without one passes no gradient
    # either way (its ReLU output is 0). Pooling first runs the ReLU on a quarter of the values.
    for k in range(len(items) - 1):
        if items[k] == "relu" and isinstance(items[k + 1], Pool):
            items[k], items[k + 1] = items[k + 1], items[k]
    return items


def conv_step(
    layers: Sequence[Leaf],
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    clip: float,
) -> None:
    """One SGD step of one UE on the mean cross-entropy of its batch, updating ``params`` in place.

    Args:
        layers: the chain (:func:`conv_chain`).
        params: the parameters by name (the module's shapes), in the model's ``named_parameters`` order.
        x: inputs ``(b, C, H, W)``; y: labels ``(b,)``.
        lr: learning rate; clip: global L2 norm bound of the gradient (0: none).
    """
    b = int(y.shape[0])
    acts, indices = conv_forward(layers, params, x)
    g = loss_gradient(acts[-1], y).mul_(1.0 / b)
    first = next(i for i, layer in enumerate(layers) if isinstance(layer, (Conv, Linear)))
    fused = clip <= 0  # no clipping: every weight steps as soon as its gradient is known
    grads: dict[str, torch.Tensor] = {}
    for i in range(len(layers) - 1, first - 1, -1):
        layer, a = layers[i], acts[i]
        if isinstance(layer, Linear):
            weight = params[layer.weight]
            below = torch.mm(g, weight) if i > first else g
            if fused:
                weight.addmm_(g.t(), a, alpha=-lr)  # W <- W - lr g^T a
            else:
                grads[layer.weight] = torch.mm(g.t(), a)
            if layer.bias is not None:
                grads[layer.bias] = g.sum(dim=0)
            g = below
        elif isinstance(layer, Conv):
            weight = params[layer.weight]
            if i == first and layer.groups == 1 and layer.dilation == (1, 1):
                below, grad_w, grad_b = g, _first_weight_grad(g, a, weight.shape, layer), None
            else:  # ``below`` is None when i == first: the chain ends there
                below, grad_w, grad_b = _aten.convolution_backward(
                    g,
                    a,
                    weight,
                    None if layer.bias is None else [weight.shape[0]],
                    layer.stride,
                    layer.padding,
                    layer.dilation,
                    False,
                    [0, 0],
                    layer.groups,
                    [i > first, True, layer.bias is not None],
                )
            if layer.bias is not None:
                grads[layer.bias] = grad_b if grad_b is not None else g.sum(dim=(0, 2, 3))
            if fused:
                weight.add_(grad_w, alpha=-lr)
            else:
                grads[layer.weight] = grad_w
            g = below
        else:
            g = pass_back(layer, g, a, acts[i + 1], indices.get(i))
    if not fused:
        grads = {n: grads[n].unsqueeze(0) for n in params}  # the model's order: the norm sums in it
        clip_stacked_(grads, clip)
    for n, grad in grads.items():
        params[n].add_(grad.reshape(params[n].shape), alpha=-lr)


def conv_forward(
    layers: Sequence[Leaf], params: dict[str, torch.Tensor], x: torch.Tensor
) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
    """The forward pass of a convolution chain on inputs ``x`` ``(b, C, H, W)``.

    Returns:
        ``(acts, indices)``: ``acts[i]`` the input of layer i and ``acts[-1]`` the logits; ``indices[i]``
        the argmax indices of pooling layer i (channels-first), for :func:`pass_back`.
    """
    b = int(x.shape[0])
    acts = [x]
    indices: dict[int, torch.Tensor] = {}
    for i, layer in enumerate(layers):
        h = acts[-1]
        if isinstance(layer, Conv):
            bias = None if layer.bias is None else params[layer.bias]
            weight = params[layer.weight]
            h = functional.conv2d(h, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)
        elif isinstance(layer, Pool):
            h, where = _aten.max_pool2d_with_indices(
                h.contiguous(memory_format=torch.channels_last),  # the fast kernel; same maxima, indices
                layer.kernel,
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.ceil_mode,
            )
            indices[i] = where.contiguous()
            h = h.contiguous()
        elif isinstance(layer, Linear):
            h = functional.linear(h, params[layer.weight], None if layer.bias is None else params[layer.bias])
        elif layer == "relu":
            h = torch.relu(h)
        else:  # flatten
            h = h.reshape(b, -1)
        acts.append(h)
    return acts, indices


def pass_back(
    layer: Leaf, g: torch.Tensor, a: torch.Tensor, out: torch.Tensor, index: torch.Tensor | None
) -> torch.Tensor:
    """The gradient at the input ``a`` of a layer without parameters (pooling, ReLU, flattening), from
    the gradient ``g`` at its output ``out``; ``index``: a pooling layer's argmax indices."""
    if isinstance(layer, Pool):
        assert index is not None, "a pooling layer's backward needs its forward's indices"
        return _aten.max_pool2d_with_indices_backward(
            g, a, layer.kernel, layer.stride, layer.padding, layer.dilation, layer.ceil_mode, index
        )
    if layer == "relu":
        return _aten.threshold_backward(g, out, 0)
    return g.reshape(a.shape)  # flatten


def _first_weight_grad(g: torch.Tensor, a: torch.Tensor, shape: torch.Size, conv: Conv) -> torch.Tensor:
    """The weight gradient of a convolution whose input gradient is not needed, as one product.

    ``dW[o, c, i, j] = sum over samples and output pixels of g[., o, y, x] a_pad[., c, s y + i, s x + j]``:
    the padded input's windows are gathered once into a ``(C k_h k_w, b H W)`` matrix, then one ``mm``
    with the output gradient ``(O, b H W)``. oneDNN's backward for a first layer with one input channel
    (MNIST ``cnn``'s) runs at under a tenth of the matmul rate.
    """
    kh, kw = shape[2:]
    windows = window_view(a, (kh, kw), conv)
    b, c, h, w = windows.shape[:4]
    cols = windows.permute(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, b * h * w)
    out = g.shape[1]
    grad = torch.mm(g.transpose(0, 1).reshape(out, b * h * w), cols.t())
    return grad.view(shape)


def window_view(a: torch.Tensor, kernel: tuple[int, int], conv: Conv) -> torch.Tensor:
    """The windows an undilated convolution ``conv`` with a ``kernel`` (k_h, k_w) reads from its input
    ``a`` ``(b, C, H, W)``, zero-padded: a strided view ``(b, C, H_out, W_out, k_h, k_w)`` (no copy
    but the padding's)."""
    assert conv.dilation == (1, 1), "window_view reads undilated windows"
    (kh, kw), (sh, sw), (ph, pw) = kernel, conv.stride, conv.padding
    padded = functional.pad(a, (pw, pw, ph, ph))
    return padded.unfold(2, kh, sh).unfold(3, kw, sw)
