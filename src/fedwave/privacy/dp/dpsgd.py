"""Sample-level DP-SGD (Abadi et al. 2016) for one local step: Poisson batch, per-example clip, noise.

One step on a UE holding n samples, sampling rate q = B / n (B the expected batch size):

1. :func:`poisson_batch` - every sample joins the batch independently with probability q (the batch size
   varies; it may be empty).
2. :func:`per_example_gradients` - vectorised with ``torch.func`` (``functional_call`` + ``vmap`` +
   ``grad``); dropout draws a different mask per example (``randomness="different"``) from a stream
   seeded by the step's generator.
3. :func:`clip_per_example` - each example's gradient (all tensors together) to L2 norm C.
4. :func:`noisy_gradient` - sum, add N(0, (z C)^2) per coordinate, divide by the *expected* batch size
   B = q n (not the realised one, which would leak the batch size).

Models whose layers mix examples (BatchNorm in training mode) have no per-example gradient:
:func:`check_dpsgd_model` refuses them and names GroupNorm as the replacement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from fedwave.errors import ConfigError
from fedwave.privacy.dp.mechanisms import gaussian_noise

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_dpsgd_model(model: nn.Module, model_name: str = "the model") -> None:
    """Refuse models with layers that mix examples in a batch (BatchNorm; InstanceNorm with running stats).

    Raises:
        ConfigError: naming ``dp.level=sample``, the offending layers and GroupNorm as the fix.
    """
    bad = [
        f"{name} ({type(m).__name__})"
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        or (isinstance(m, nn.modules.instancenorm._InstanceNorm) and m.track_running_stats)
    ]
    if bad:
        shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise ConfigError(
            f"dp.level=sample: model.name '{model_name}' has BatchNorm layers ({shown}), whose batch "
            "statistics mix examples, so per-example gradients (and their clipping) are undefined. Use a "
            "model with GroupNorm instead of BatchNorm (nn.GroupNorm(groups, channels)) or one without "
            "normalisation (convnet, cnn, 2nn, mlp, lenet), or dp.level=client."
        )


def poisson_batch(num_samples: int, sample_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Indices (int64, sorted) of a Poisson-sampled batch: each sample joins with probability q."""
    if not 0 <= sample_rate <= 1:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
    keep = torch.rand(num_samples, generator=generator, dtype=torch.float64) < sample_rate
    return torch.nonzero(keep).flatten()


def per_example_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Gradient of each example's loss w.r.t. each trainable parameter, shaped ``(len(x), *p.shape)``.

    ``loss_fn`` is applied to a batch of one (so a mean-reduced loss is that example's loss). Dropout
    and other random layers draw per example from the global torch RNG, which is forked and seeded from
    ``generator`` for the call (and restored after), so the result depends only on the inputs, the
    parameters and ``generator``. An empty batch gives zero-length leading dimensions.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if x.shape[0] == 0:
        return [torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device) for _, p in named]
    params = {n: p.detach() for n, p in named}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss_one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, ({**p, **frozen}, buffers), (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    per_grad = vmap(grad(loss_one), in_dims=(None, 0, 0), randomness="different")
    if generator is None:
        per = per_grad(params, x, y)
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            per = per_grad(params, x, y)
    return [per[n] for n, _ in named]


def clip_per_example(
    per_example: Sequence[torch.Tensor], max_norm: float | None
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Clip each example's gradient (over all tensors) to L2 norm ``max_norm``; return (grads, factors).

    ``max_norm=None`` returns the tensors themselves and factors of 1 (an exact no-op).
    """
    grads = list(per_example)
    n = grads[0].shape[0] if grads else 0
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"clip bound must be > 0 (or None for no clipping), got {max_norm}")
    if max_norm is None or n == 0:
        return grads, torch.ones(n, dtype=torch.float64)
    sq = torch.zeros(n, dtype=torch.float64, device=grads[0].device)
    for g in grads:
        sq = sq + g.reshape(n, -1).double().pow(2).sum(1)
    norms = sq.sqrt()
    factors = torch.where(norms > max_norm, max_norm / norms * (1.0 - 1e-6), torch.ones_like(norms))
    clipped = [g * factors.to(g.dtype).view(n, *([1] * (g.dim() - 1))) for g in grads]
    return clipped, factors.cpu()


def noisy_gradient(
    clipped: Sequence[torch.Tensor],
    *,
    clip: float | None,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator,
) -> list[torch.Tensor]:
    """(sum of clipped per-example gradients + N(0, (z C)^2)) / expected batch size, per parameter.

    With z = 0 nothing is drawn and no noise is added (exact). Noise needs a clip bound (its std is
    z C), so ``clip=None`` with z > 0 is an error.
    """
    if not expected_batch_size > 0:
        raise ValueError(f"expected batch size must be > 0, got {expected_batch_size}")
    summed = [g.sum(0) for g in clipped]
    if noise_multiplier > 0:
        if clip is None:
            raise ValueError("DP-SGD noise has std z * clip: a clip bound is needed when z > 0")
        noise = gaussian_noise([s.shape for s in summed], noise_multiplier * clip, generator)
        summed = [s + e.to(device=s.device, dtype=s.dtype) for s, e in zip(summed, noise)]
    return [s / expected_batch_size for s in summed]


def dp_sgd_gradient(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    clip: float | None,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator,
) -> list[torch.Tensor]:
    """The DP-SGD gradient of one (already Poisson-sampled) batch, aligned with the trainable parameters.

    Set it as ``p.grad`` of each trainable parameter (in ``model.parameters()`` order) and step the
    optimizer. Draws from ``generator``: the dropout seed, then the noise.
    """
    per = per_example_gradients(model, loss_fn, x, y, generator=generator)
    clipped, _ = clip_per_example(per, clip)
    return noisy_gradient(
        clipped,
        clip=clip,
        noise_multiplier=noise_multiplier,
        expected_batch_size=expected_batch_size,
        generator=generator,
    )
