"""Aggregation maths: pure functions over lists of tensors.

- Updates and floating buffers: the weighted arithmetic mean ``sum_k w_k u_k / sum_k w_k``
  (uniform weights give the plain mean: for two equal updates of 1 the result is 1).
- Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) are never averaged as floats: the
  aggregate is their element-wise **maximum** (the most training any contributor has seen).
- An update holding NaN or Inf is never aggregated: :func:`is_finite` lets the caller reject it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Update = Sequence[torch.Tensor]


def is_finite(update: Update) -> bool:
    """True when every entry of every tensor is finite.

    A tensor's plain sum is checked first: a NaN or an infinity anywhere makes the sum NaN or infinite
    (no addition turns them finite again), so a finite sum proves every entry finite, at a fraction of the
    cost of ``torch.isfinite`` (one pass, no mask). Only a non-finite sum, which finite entries can also
    give by overflowing, is settled entry by entry. Tensors that lie back to back in one storage (a
    decoded payload's) are summed as one (:func:`flat_view`).
    """
    flat = flat_view(update)
    for t in update if flat is None else [flat]:
        if (
            t.is_floating_point()
            and not math.isfinite(float(t.detach().sum()))
            and not bool(torch.isfinite(t).all())
        ):
            return False
    return True


def flat_view(tensors: Update) -> torch.Tensor | None:
    """One 1-D view of all ``tensors`` when they are views of one tensor lying back to back, in order,
    all contiguous and of one dtype (as the tensors of one decoded payload are); None otherwise."""
    if not tensors:
        return None
    first = tensors[0]
    base, start, dtype = first._base, first.storage_offset(), first.dtype
    if base is None:
        return None
    end = start
    for t in tensors:
        if t._base is not base or t.dtype != dtype or t.storage_offset() != end or not t.is_contiguous():
            return None
        end += t.numel()
    return first.detach().as_strided((end - start,), (1,), start)


def update_norm(update: Update) -> float:
    """Global L2 norm over every entry of every tensor, computed in float64 (finite for finite float32)."""
    total = 0.0
    for t in update:
        total += float(torch.linalg.vector_norm(t.detach().to(torch.float64))) ** 2
    return total**0.5


def weighted_mean(updates: Sequence[Update], weights: Sequence[float] | None = None) -> list[torch.Tensor]:
    """Tensor-by-tensor weighted mean of ``updates`` (uniform if ``weights`` is None).

    Raises:
        ValueError: no updates, mismatched structures, or weights that do not sum to a positive value.
    """
    if not updates:
        raise ValueError("weighted_mean needs at least one update")
    w = [1.0] * len(updates) if weights is None else [float(x) for x in weights]
    if len(w) != len(updates) or any(x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(f"weights must be non-negative, one per update, with a positive sum; got {w}")
    return scaled_sum(updates, w, sum(w))


def scaled_sum(updates: Sequence[Update], weights: Sequence[float], denominator: float) -> list[torch.Tensor]:
    """Tensor-by-tensor ``sum_k w_k u_k / denominator``, accumulated in float64, in the first update's dtype.

    The one arithmetic of every mean the BS forms: :func:`weighted_mean` is this with ``denominator =
    sum(weights)``; DP-FedAvg's fixed-denominator estimate is this with weights 1 and ``denominator = q
    N`` (its noise one more summand of weight 1). So with the same updates and weights and a
    denominator equal to the sum of the weights, both give the same bits.

    Raises:
        ValueError: no updates, mismatched structures, or a denominator that is not positive.
    """
    if not updates:
        raise ValueError("scaled_sum needs at least one update")
    if not denominator > 0:
        raise ValueError(f"denominator must be > 0, got {denominator}")
    n_tensors = len(updates[0])
    if any(len(u) != n_tensors for u in updates) or len(weights) != len(updates):
        raise ValueError("updates hold different numbers of tensors, or weights do not match the updates")
    shapes = [t.shape for t in updates[0]]
    for k, u in enumerate(updates[1:], start=1):
        if [t.shape for t in u] != shapes:
            got = [tuple(t.shape) for t in u]
            raise ValueError(f"update {k} has tensor shapes {got}, update 0 {[tuple(s) for s in shapes]}")
    flats = [f for f in (flat_view(u) for u in updates) if f is not None]
    if len(flats) == len(updates):
        # one add per update over all its tensors: the same additions, element by element, as below
        acc = torch.zeros(sum(math.prod(s) for s in shapes), dtype=torch.float64, device=flats[0].device)
        for f, wk in zip(flats, weights):
            if wk:
                acc.add_(f, alpha=wk / denominator)
        parts = torch.split(acc, [math.prod(s) for s in shapes])
        return [p.view(t.shape).to(t.dtype, copy=True) for p, t in zip(parts, updates[0])]
    out: list[torch.Tensor] = []
    for j in range(n_tensors):
        acc = torch.zeros_like(updates[0][j], dtype=torch.float64)
        for u, wk in zip(updates, weights):
            if wk:  # float32 entries are widened (exactly) by the float64 add itself
                acc.add_(u[j], alpha=wk / denominator)
        out.append(acc.to(updates[0][j].dtype))
    return out


def aggregate_buffers(
    buffers: Sequence[Update], weights: Sequence[float] | None = None
) -> list[torch.Tensor]:
    """Floating buffers: weighted mean; integer buffers: element-wise maximum."""
    if not buffers:
        raise ValueError("aggregate_buffers needs at least one set of buffers")
    means = weighted_mean([[b for b in bs] for bs in buffers], weights)
    out: list[torch.Tensor] = []
    for j, mean in enumerate(means):
        if buffers[0][j].is_floating_point():
            out.append(mean)
        else:
            out.append(torch.stack([bs[j] for bs in buffers]).amax(0))
    return out
