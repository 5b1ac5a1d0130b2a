"""Which samples each local step uses: one machinery for both notations.

- Original framework: step t uses the next ``per_step`` samples, cycling through the data.
- FL notation (E, B, shuffle): E epochs, each a (shuffled) pass over the data in ceil(n/B) batches of
  B samples (the last batch of an epoch holds the remainder).
"""

from __future__ import annotations

import math

import torch


def cycling_batches(num_data: int, per_step: int, steps: int) -> list[torch.Tensor]:
    """Index batches for ``steps`` steps of ``per_step`` samples, cycling through ``range(num_data)``."""
    return [torch.arange(t * per_step, (t + 1) * per_step) % num_data for t in range(steps)]


def epoch_batches(
    num_data: int, batch_size: int, epochs: int, *, shuffle: bool, generator: torch.Generator | None
) -> list[torch.Tensor]:
    """Index batches for ``epochs`` passes of ceil(num_data / batch_size) batches each.

    With ``shuffle`` each epoch is a fresh permutation drawn from ``generator``.
    """
    batches: list[torch.Tensor] = []
    for _ in range(epochs):
        order = torch.randperm(num_data, generator=generator) if shuffle else torch.arange(num_data)
        batches.extend(order.split(batch_size))
    return batches


def steps_per_epoch(num_data: int, batch_size: int) -> int:
    """ceil(num_data / batch_size)."""
    return math.ceil(num_data / batch_size)
