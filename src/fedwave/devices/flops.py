"""Training FLOPs per sample of a model, measured once with ``torch.utils.flop_counter``.

Convention (PyTorch's ``FlopCounterMode``): a multiply-add counts as 2 FLOPs; matrix products and
convolutions are counted, element-wise operations (activations, bias adds, the loss, the optimizer
step) are not. For a ``Linear(n_in, n_out)`` layer the forward pass costs 2 n_in n_out per sample and the
backward pass 2 n_in n_out for the weight gradient plus 2 n_in n_out for the input gradient, the latter
only when the layer's input needs a gradient (not for the first layer, whose input is data). A network
made of one Linear layer thus costs 4 n_in n_out FLOPs per training sample.
"""

from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode


def training_flops_per_sample(
    model: torch.nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int = 4
) -> float:
    """FLOPs of one training step (forward, cross-entropy loss, backward) per sample.

    Measured on a copy of ``model`` (train mode) with a zero batch of ``batch_size`` samples and divided
    by the batch size; the model, its gradients and the global torch RNG are left untouched.

    Args:
        model: maps a float batch ``(B, *input_shape)`` to logits ``(B, num_classes)``.
        input_shape: shape of one sample, without the batch dimension (e.g. ``(1, 8, 8)``).
        num_classes: number of classes of the logits.
        batch_size: samples in the measuring batch (>= 2 keeps batch norm valid).

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
    with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False) as counter:
        logits = probe(x)
        if logits.shape != (batch_size, num_classes):
            raise ValueError(
                f"model output has shape {tuple(logits.shape)}; expected ({batch_size}, {num_classes})"
            )
        torch.nn.functional.cross_entropy(logits, y).backward()
    return counter.get_total_flops() / batch_size
