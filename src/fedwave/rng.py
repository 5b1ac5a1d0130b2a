"""Random streams derived from (seed, round, UE, purpose).

Every stochastic function in fedwave takes its generator. Generators are never shared between purposes:
each is derived by hashing the run seed together with a tuple of keys, so adding a draw in one place never
shifts the numbers drawn in another, and streams do not depend on the round number alone.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

Key = int | str


def derive_seed(seed: int, *keys: Key) -> int:
    """Return a 63-bit seed that depends on ``seed`` and every key, in order.

    Args:
        seed: the run's seed.
        keys: e.g. ``("round", 3, "ue", 17, "codec")``; ints and strings are both accepted.
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(seed)).encode())
    for key in keys:
        h.update(b"\x1f")
        h.update(f"{type(key).__name__}:{key}".encode())
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def torch_generator(seed: int, *keys: Key) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``derive_seed(seed, *keys)``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(seed, *keys))
    return g


def numpy_generator(seed: int, *keys: Key) -> np.random.Generator:
    """A NumPy ``Generator`` (PCG64) seeded from ``derive_seed(seed, *keys)``."""
    return np.random.default_rng(derive_seed(seed, *keys))
