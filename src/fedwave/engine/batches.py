"""The batches of a stacked step: every UE's batch gathered, or zero-padded to the longest, and the losses.

Used by :mod:`fedwave.engine.batched`. A padded batch carries per-sample loss weights: 1/b for a UE's b
real samples, 0 for padding (and for a UE without a step at this index), so the weighted sum of the
per-sample cross-entropies is each UE's mean loss and the padding adds no gradient. Only models built of
per-sample layers (:data:`PER_SAMPLE`: no batch statistics, no randomness) may be padded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fedwave.users.dpsgd import UserDPSGD
from fedwave.users.multi import UserMultiStep


def mean_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per UE (dim 0) mean cross-entropy of logits ``(U, b, C)`` against labels ``(U, b)``.

    Outside ``vmap``: a vmapped ``nll_loss`` runs through torch's decompositions, whose import costs ~1 s.
    """
    u, b, c = logits.shape
    each = nn.functional.cross_entropy(logits.reshape(u * b, c), y.reshape(u * b), reduction="none")
    return each.reshape(u, b).mean(dim=1)


def gather(
    users: Sequence[UserMultiStep], rows: list[torch.Tensor | None], members: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(M, b, ...)`` and labels ``(M, b)`` of the step's batches of UEs ``members``."""
    x = torch.stack([users[k].inputs[rows[k]] for k in members])
    y = torch.stack([users[k].labels[rows[k]] for k in members])
    return x, y


def padded(
    users: Sequence[UserMultiStep] | Sequence[UserDPSGD], rows: Sequence[torch.Tensor | None]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every UE's batch padded with zero samples to the longest: inputs, labels and loss weights (1/b
    for the b real samples, 0 for padding; a UE without a step, or with an empty batch, has weight 0
    throughout)."""
    width = max(0 if r is None else int(r.numel()) for r in rows)
    first = users[0].inputs
    x = first.new_zeros((len(users), width, *first.shape[1:]))
    y = users[0].labels.new_zeros((len(users), width))
    w = torch.zeros(len(users), width, dtype=first.dtype, device=first.device)
    for k, r in enumerate(rows):
        if r is None or not r.numel():
            continue
        b = int(r.numel())
        x[k, :b] = users[k].inputs[r]
        y[k, :b] = users[k].labels[r]
        w[k, :b] = 1.0 / b
    return x, y, w


def weighted_cross_entropy(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per UE (dim 0) sum of ``w``-weighted cross-entropies of logits ``(U, b, C)``, labels ``(U, b)``."""
    u, b, c = logits.shape
    each = nn.functional.cross_entropy(logits.reshape(u * b, c), y.reshape(u * b), reduction="none")
    return (each.reshape(u, b) * w).sum(dim=1)


#: Modules that treat every sample of a batch on its own (no batch statistics, no randomness): a model
#: built of these alone may be given zero-padded batches whose padding carries no loss weight.
PER_SAMPLE: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.ReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Sequential,
)


def per_sample(model: nn.Module) -> bool:
    """Whether every module of ``model`` is one of :data:`PER_SAMPLE` or the zoo's flatten container."""
    from fedwave.models.zoo import _Sequential

    return all(type(m) in PER_SAMPLE or type(m) is _Sequential for m in model.modules())
