"""The Gaussian mechanism of client-level DP-FedAvg as pure functions: clip, noise, shares, denominator.

DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models"): each
round every UE joins independently with probability q; a selected UE's update is clipped to global L2
norm S ("flat" clipping over all tensors); the BS forms the fixed-denominator estimate
sum_k w_k Delta_k / (q W), W = sum of all N weights, whose sensitivity is S / (q W) when every w_k <= 1,
and Gaussian noise of std z S / (q W) is added to it. fedwave weights every UE by w_k = 1, so W = N and
the noise is N(0, (z S)^2) on the *sum*, which is then divided by q N.

Placement of that noise:

* central: the BS adds N(0, (z S)^2) to the decoded sum (:func:`central_noise_std`).
* distributed: each of the ``planned`` UEs told to take part adds N(0, (z S)^2 / planned) to its clipped
  update before encoding (:func:`distributed_share_std`); the shares of all planned UEs sum to the
  planned variance. When only ``delivered`` of them reach the BS (deadline, lost packets), the sum
  carries std z S sqrt(delivered / planned) (:func:`delivered_noise_std`), and the accountant must be
  stepped with the noise multiplier actually delivered, z sqrt(delivered / planned)
  (:func:`effective_noise_multiplier`). This accounting treats neighbouring datasets as "zero-out"
  neighbours (a UE's update replaced by zeros while its noise share still counts), the usual convention
  for distributed noise; with central noise zero-out and add/remove neighbours coincide.

Whom epsilon protects against: everyone who sees the released global models. With central noise the
BS itself is trusted. With distributed noise the sum carries the planned noise only if the BS sees just
the sum (secure aggregation); fedwave's BS decodes every update on its own, and against it each update
carries only its share, z / sqrt(planned). Lossy codecs: the sensitivity S holds for what the BS sums
only if it clips each *decoded* update to S again (stochastic quantizers can raise the norm), which the
BS does under central noise (:mod:`fedwave.server.dp`); under distributed noise the decoded sum would be
Gaussian only approximately, so training refuses distributed noise with a lossy uplink codec
(:func:`fedwave.privacy.dp.config.check_dp_training`).

Order on a UE: clip -> (distributed) noise -> encode, so quantization acts on the noised update.
``max_norm=None`` (no clipping) and ``std=0`` (no noise) return the input tensors themselves: exact
no-ops, so a DP run with z = 0 and no clipping can equal the run without DP bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Update = Sequence[torch.Tensor]


def global_l2_norm(update: Update) -> float:
    """L2 norm over all entries of all tensors, computed in float64 (a Python float)."""
    total = 0.0
    for t in update:
        total += float(torch.sum(t.detach().double() ** 2))
    return math.sqrt(total)


def clip_update(update: Update, max_norm: float | None) -> tuple[list[torch.Tensor], float]:
    """Scale ``update`` so its global L2 norm is at most ``max_norm``; return (tensors, factor).

    The factor is max_norm / norm (shrunk by one part in 10^6 so float32 rounding cannot leave the
    ball) when the norm exceeds ``max_norm``, else 1.0. An update inside the ball, any update when
    ``max_norm`` is None (no clipping), and a non-finite update (which the BS rejects) come back as the
    very same tensors, factor 1.0.
    """
    tensors = list(update)
    if max_norm is None:
        return tensors, 1.0
    if not max_norm > 0:
        raise ValueError(f"clip bound must be > 0 (or None for no clipping), got {max_norm}")
    norm = global_l2_norm(tensors)
    if not math.isfinite(norm) or norm <= max_norm:
        return tensors, 1.0
    # The small relative margin keeps the float32 result inside the ball despite rounding.
    factor = max_norm / norm * (1.0 - 1e-6)
    return [t * factor for t in tensors], factor


def gaussian_noise(
    shapes: Sequence[torch.Size], std: float, generator: torch.Generator
) -> list[torch.Tensor]:
    """I.i.d. N(0, std^2) float32 tensors of the given shapes, drawn from ``generator`` in order (CPU)."""
    if std < 0 or not math.isfinite(std):
        raise ValueError(f"noise std must be finite and >= 0, got {std}")
    return [torch.randn(s, generator=generator, dtype=torch.float32) * std for s in shapes]


def add_gaussian_noise(update: Update, std: float, generator: torch.Generator) -> list[torch.Tensor]:
    """``update`` plus i.i.d. N(0, std^2) noise (new tensors); ``std == 0`` returns the inputs unchanged.

    With ``std == 0`` nothing is drawn from ``generator`` (its stream is purpose-specific, so no other
    stream shifts) and the tensors themselves are returned: adding zeros would turn -0.0 into +0.0.
    """
    tensors = list(update)
    if std == 0:
        return tensors
    noise = gaussian_noise([t.shape for t in tensors], std, generator)
    return [t + n.to(device=t.device, dtype=t.dtype) for t, n in zip(tensors, noise)]


def central_noise_std(noise_multiplier: float, clip: float) -> float:
    """Std of the noise the BS adds to the sum of clipped updates: z S (same units as the updates)."""
    return noise_multiplier * clip


def distributed_share_std(noise_multiplier: float, clip: float, planned: int) -> float:
    """Std of one UE's noise share, z S / sqrt(planned): ``planned`` shares sum to variance (z S)^2."""
    if planned < 1:
        raise ValueError(f"planned number of noise shares must be >= 1, got {planned}")
    return noise_multiplier * clip / math.sqrt(planned)


def delivered_noise_std(noise_multiplier: float, clip: float, delivered: int, planned: int) -> float:
    """Std of the noise in a sum where ``delivered`` of ``planned`` shares arrived: z S sqrt(m / n)."""
    return noise_multiplier * clip * math.sqrt(_delivered_fraction(delivered, planned))


def effective_noise_multiplier(noise_multiplier: float, delivered: int, planned: int) -> float:
    """The noise multiplier the sum actually carries, z sqrt(delivered / planned), for the accountant.

    Equal to z when every share arrived, lower (so epsilon grows faster) when UEs dropped. With
    ``delivered == 0`` the sum holds no UE's data either: the caller must not step the accountant.
    """
    return noise_multiplier * math.sqrt(_delivered_fraction(delivered, planned))


def fixed_denominator(sample_rate: float, num_ues: int) -> float:
    """The DP-FedAvg denominator q N (expected number of UEs per round, every weight 1)."""
    if not 0 < sample_rate <= 1 or num_ues < 1:
        raise ValueError(f"need 0 < sample_rate <= 1 and num_ues >= 1, got {sample_rate}, {num_ues}")
    return sample_rate * num_ues


def fixed_denominator_mean(noised_sum: Update, sample_rate: float, num_ues: int) -> list[torch.Tensor]:
    """The DP-FedAvg estimate: the (noised) sum of clipped updates divided by q N."""
    denom = fixed_denominator(sample_rate, num_ues)
    return [t / denom for t in noised_sum]


def _delivered_fraction(delivered: int, planned: int) -> float:
    if planned < 1 or not 0 <= delivered <= planned:
        raise ValueError(f"need 0 <= delivered <= planned and planned >= 1, got {delivered} of {planned}")
    return delivered / planned
