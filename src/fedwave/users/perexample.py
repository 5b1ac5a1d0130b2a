"""Per-example gradients and per-example clipping (single-step users with ``per_example_clipping``).

- Vectorised with ``torch.func`` (``vmap`` over ``grad``) with ``randomness="different"``: random layers
  such as Dropout draw an independent mask for every example from torch's global RNG (the user seeds it from
  its own stream, see :mod:`fedwave.users.randomness`).
- Models whose layers update running statistics in ``train()`` mode (BatchNorm) are looped example by
  example (each forward sees a batch of one, as in the original framework); their buffers are restored
  afterwards, so computing per-example gradients never moves the running statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from fedwave.users.batchnorm import tracks_running_stats


def per_example_gradients(
    model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> list[torch.Tensor]:
    """Gradient of ``loss_fn(model(x[i:i+1]), y[i:i+1])`` for every i, one tensor per parameter.

    Returns tensors of shape ``(n, *p.shape)`` in ``model.parameters()`` order (tied parameters once).
    """
    if model.training and tracks_running_stats(model):
        return _looped(model, loss_fn, x, y)
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss_one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    per = vmap(grad(loss_one), in_dims=(None, 0, 0), randomness="different")(params, x, y)
    return [per[n].detach() for n in names]


def _looped(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    plist = list(model.parameters())
    saved = [b.detach().clone() for b in model.buffers()]
    rows: list[list[torch.Tensor]] = []
    try:
        for i in range(x.shape[0]):
            loss = loss_fn(model(x[i : i + 1]), y[i : i + 1])
            rows.append([g.detach() for g in torch.autograd.grad(loss, plist)])
    finally:
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved):
                b.copy_(s)
    return [torch.stack([r[j] for r in rows]) for j in range(len(plist))]


def per_example_norms(per: Sequence[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm (over all parameter tensors) of each example's gradient, shape ``(n,)``."""
    n = per[0].shape[0]
    return torch.stack([g.reshape(n, -1).double().pow(2).sum(1) for g in per]).sum(0).sqrt()


def clip_per_example(per: Sequence[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    """Scale each example's gradient so its global L2 norm is at most ``max_norm`` (unchanged if below)."""
    factors = (max_norm / (per_example_norms(per) + 1e-12)).clamp(max=1.0)
    return [g * factors.to(g.dtype).view(-1, *([1] * (g.dim() - 1))) for g in per]


def clipped_mean(per: Sequence[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    """Mean over examples of the per-example gradients clipped to ``max_norm``."""
    return [g.mean(0) for g in clip_per_example(per, max_norm)]
