"""Random layers (Dropout and the like) drawing from the user's own stream, not from torch's global RNG.

PyTorch's random layers (``nn.Dropout``, ``F.dropout``, ...) draw from the global generator of the device.
A user's query runs inside :func:`seeded_global_rng`: the global RNG is forked (the caller's state is
restored afterwards) and seeded from one draw of the query's generator, so the masks are a pure function of
(seed, user, query) and the global RNG of the process is left untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

_SEED_HIGH = 1 << 62


def draw_seed(generator: torch.Generator) -> int:
    """One 62-bit seed drawn from ``generator`` (consumes one draw)."""
    return int(torch.randint(0, _SEED_HIGH, (1,), generator=generator, dtype=torch.int64))


@contextmanager
def seeded_global_rng(generator: torch.Generator, device: torch.device | str | None = None) -> Iterator[int]:
    """Fork the global RNG (CPU, and ``device`` if it is a CUDA device), seed it from ``generator``.

    Yields the seed used. On exit the global RNG states are restored to what they were before.
    """
    seed = draw_seed(generator)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:  # only the device in use: other GPUs' generators stay as they are
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield seed
