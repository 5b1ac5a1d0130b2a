"""Local privacy measures of a user: global-norm clipping and additive noise (absolute scale)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def global_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """L2 norm over all entries of all tensors (a 0-dim tensor)."""
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors]))


def clip_(tensors: Sequence[torch.Tensor], max_norm: float) -> float:
    """Scale ``tensors`` in place so their global L2 norm is at most ``max_norm``; return the factor used."""
    norm = float(global_norm(tensors))
    factor = min(1.0, max_norm / (norm + 1e-12)) if max_norm > 0 else 1.0
    if factor < 1.0:
        for t in tensors:
            t.mul_(factor)
    return factor


def sample_noise(
    shape: torch.Size, scale: float, distribution: str, *, generator: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    """I.i.d. noise of the given scale: gaussian (std = scale) or laplacian (diversity b = scale).

    Laplace samples are drawn by inverse CDF from the generator's uniforms, so they depend only on it.
    """
    if distribution == "gaussian":
        return torch.randn(shape, generator=generator, dtype=dtype) * scale
    if distribution == "laplacian":
        u = torch.rand(shape, generator=generator, dtype=torch.float64) - 0.5
        u = u.clamp(-0.5 + 1e-12, 0.5 - 1e-12)
        return (-scale * torch.sign(u) * torch.log1p(-2.0 * u.abs())).to(dtype)
    raise ValueError(
        f"local_diff_privacy.distribution must be 'gaussian' or 'laplacian', got '{distribution}'"
    )


def add_noise_(
    tensors: Sequence[torch.Tensor], scale: float, distribution: str, *, generator: torch.Generator
) -> None:
    """Add i.i.d. noise of ``scale`` to every tensor in place (nothing if ``scale`` is 0)."""
    if scale <= 0:
        return
    for t in tensors:
        t.add_(sample_noise(t.shape, scale, distribution, generator=generator, dtype=t.dtype).to(t.device))
