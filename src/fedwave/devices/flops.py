"""Training FLOPs per sample of a model: counted analytically, or measured with ``torch.utils.flop_counter``.

Convention (PyTorch's ``FlopCounterMode``): a multiply-add counts as 2 FLOPs; matrix products and
convolutions are counted, element-wise operations (activations, bias adds, the loss, the optimizer
step) are not. For a ``Linear(n_in, n_out)`` layer the forward pass costs 2 n_in n_out per sample and the
backward pass 2 n_in n_out for the weight gradient plus 2 n_in n_out for the input gradient, the latter
only when the layer's input needs a gradient (not for the first layer, whose input is data). A network
made of one Linear layer thus costs 4 n_in n_out FLOPs per training sample.

Models built only from the layers in ``_COUNTED`` and ``_FREE`` (every model of the zoo) are counted
from one forward pass with hooks, without ``FlopCounterMode``: that mode imports ``torch._dynamo``, which
costs seconds of start-up. Any other model is measured with ``FlopCounterMode``; both give the same
number (checked for the whole zoo by the tests).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

# Layers whose cost is a matrix product or a convolution (counted) and layers that cost nothing under
# the convention (element-wise, pooling, normalisation, containers).
_COUNTED: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
_FREE: tuple[type[nn.Module], ...] = (
    nn.Sequential,
    nn.Identity,
    nn.Flatten,
    nn.ReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Dropout,
)


def _countable(model: nn.Module) -> bool:
    """True when every module of ``model`` has a known cost (exact types, so subclasses are measured)."""
    from fedwave.models import zoo

    # the zoo's own containers: their forward only chains the layers above (and adds a shortcut)
    known = _COUNTED + _FREE + (zoo._Sequential, zoo._BasicBlock)
    return all(type(m) in known for m in model.modules())


def _layer_flops(layer: nn.Module, x: torch.Tensor, out: torch.Tensor) -> float:
    """FLOPs of one layer's forward, weight-gradient and (when needed) input-gradient passes."""
    if isinstance(layer, nn.Linear):
        rows = x.numel() // layer.in_features
        one = 2.0 * rows * layer.in_features * layer.out_features
    else:
        assert isinstance(layer, nn.Conv1d | nn.Conv2d)
        w = layer.weight
        one = 2.0 * out.shape[0] * math.prod(out.shape[2:]) * w.shape[0] * math.prod(w.shape[1:])
    return one * (3.0 if x.requires_grad else 2.0)


def _counted_flops(probe: nn.Module, x: torch.Tensor, batch_size: int, num_classes: int) -> float:
    """Sum of ``_layer_flops`` over one forward pass of ``probe`` on ``x`` (autograd on, no backward)."""
    total = [0.0]

    def hook(layer: nn.Module, inputs: tuple[Any, ...], out: torch.Tensor) -> None:
        total[0] += _layer_flops(layer, inputs[0], out)

    handles = [m.register_forward_hook(hook) for m in probe.modules() if isinstance(m, _COUNTED)]
    try:
        _check_logits(probe(x), batch_size, num_classes)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def training_flops_per_sample(
    model: torch.nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int = 4,
    measure: bool = False,
) -> float:
    """FLOPs of one training step (forward, cross-entropy loss, backward) per sample.

    Computed on a copy of ``model`` (train mode) with a zero batch of ``batch_size`` samples and divided
    by the batch size; the model, its gradients and the global torch RNG are left untouched.

    Args:
        model: maps a float batch ``(B, *input_shape)`` to logits ``(B, num_classes)``.
        input_shape: shape of one sample, without the batch dimension (e.g. ``(1, 8, 8)``).
        num_classes: number of classes of the logits.
        batch_size: samples in the measuring batch (>= 2 keeps batch norm valid).
        measure: always use ``FlopCounterMode`` (the reference the analytic count is checked against).

    Returns:
        FLOPs per sample (float, FlopCounterMode convention).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    probe = copy.deepcopy(model).cpu().float().train()
    for p in probe.parameters():
        p.grad = None
    x = torch.zeros((batch_size, *input_shape))
    y = torch.zeros(batch_size, dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        if not measure and _countable(probe):
            return _counted_flops(probe, x, batch_size, num_classes) / batch_size
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            logits = probe(x)
            _check_logits(logits, batch_size, num_classes)
            torch.nn.functional.cross_entropy(logits, y).backward()
    return counter.get_total_flops() / batch_size


def _check_logits(logits: torch.Tensor, batch_size: int, num_classes: int) -> None:
    if logits.shape != (batch_size, num_classes):
        raise ValueError(
            f"model output has shape {tuple(logits.shape)}; expected ({batch_size}, {num_classes})"
        )
