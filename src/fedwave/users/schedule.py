"""Which samples each local step uses: one machinery for both notations.

- Original framework (``num_local_updates`` steps of B = ``num_data_per_local_update_step``): step t
  starts at sample ``s_t = (t * B) mod n`` and takes the slice ``[s_t, min(s_t + B, n))``. A slice never
  wraps past the end of the data: when n is not a multiple of B the step that reaches the end is shorter,
  and the next step starts at ``s_{t+1} = (s_t + B) mod n`` (so it does not restart at 0). Example, n = 5,
  B = 2, 4 steps: [0, 1], [2, 3], [4], [1, 2]. This is exactly the original framework's rule (and the
  rule its attacks replay from the shared ``steps``/``data_per_step``); the per-step label counts shared in
  ``local_hyperparams`` show every step's size.
- FL notation (E, B, shuffle): E epochs, each a (shuffled) pass over the data in ceil(n/B) batches of
  B samples (the last batch of an epoch holds the remainder).
"""

from __future__ import annotations

import math

import torch


def cycling_batches(num_data: int, per_step: int, steps: int) -> list[torch.Tensor]:
    """Index batches of ``steps`` steps of (up to) ``per_step`` samples, cycling through ``range(num_data)``.

    Raises:
        ValueError: ``num_data``, ``per_step`` or ``steps`` below 1.
    """
    if num_data < 1 or per_step < 1 or steps < 1:
        raise ValueError(f"need num_data, per_step, steps >= 1; got {num_data}, {per_step}, {steps}")
    batches: list[torch.Tensor] = []
    start = 0
    for _ in range(steps):
        batches.append(torch.arange(start, min(start + per_step, num_data)))
        start = (start + per_step) % num_data
    return batches


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
