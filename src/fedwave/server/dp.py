"""The BS's half of client-level DP-FedAvg: clip each decoded update, sum, add noise, fixed denominator.

DP-FedAvg (McMahan et al. 2018) as the BS runs it, given the updates that decoded and are finite:

1. clip each update again to L2 norm S (central placement). The UE clipped it before encoding, but a
   lossy codec may raise the norm of what the BS decodes (stochastic quantizers do); clipping the decoded
   update keeps the sensitivity of the sum at S whatever the codec (and whatever a faulty UE sent).
   Under distributed placement the updates carry the UEs' noise shares, so the BS must not clip them
   (it would cut the noise); that placement is only allowed with lossless uplink codecs
   (:func:`fedwave.privacy.dp.config.check_dp_training`), where the decoded update is exactly the one
   the UE clipped.
2. sum them with weight 1 each: ``fl.weighting`` does not apply (weights by sample count would raise
   the sensitivity above S), and there is no staleness (asynchronous rounds are refused with DP).
3. central placement: add N(0, (z S)^2) per coordinate to the sum, also when nothing arrived (a round
   whose Poisson sample is empty still releases a noised model, so the release does not reveal that).
4. divide by the fixed denominator q N (not by the number that arrived, which is random and private).

Steps 2-4 use :func:`fedwave.server.aggregate.scaled_sum`, the arithmetic of the plain weighted mean
(the noise is one more summand of weight 1): with no clipping, z = 0 and q N equal to the number of
updates aggregated, the result is the plain uniform mean bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fedwave.privacy.dp.mechanisms import clip_update, gaussian_noise
from fedwave.server.aggregate import scaled_sum


@dataclass(frozen=True)
class DPAggregation:
    """How the BS aggregates under client-level DP.

    Attributes:
        clip: S, the L2 bound each decoded update is clipped to (None: no clipping at the BS).
        noise_std: std of the Gaussian noise the BS adds to each coordinate of the sum (z S; 0 for none).
        denominator: the fixed denominator q N (expected number of UEs per round).
    """

    clip: float | None
    noise_std: float
    denominator: float

    def __post_init__(self) -> None:
        if not self.denominator > 0:
            raise ValueError(f"the fixed denominator q N must be > 0, got {self.denominator}")
        if not self.noise_std >= 0:
            raise ValueError(f"noise std must be >= 0, got {self.noise_std}")


def dp_clip(tensors: Sequence[torch.Tensor], dp: DPAggregation) -> tuple[list[torch.Tensor], bool]:
    """Step 1: ``tensors`` clipped to ``dp.clip`` (the same tensors when inside it); whether it clipped."""
    out, factor = clip_update(tensors, dp.clip)
    return out, factor < 1.0


def dp_mean(
    updates: Sequence[Sequence[torch.Tensor]],
    dp: DPAggregation,
    shapes: Sequence[torch.Size],
    generator: torch.Generator | None,
) -> list[torch.Tensor] | None:
    """Steps 2-4: (sum of the clipped ``updates`` + noise) / q N; None when there is nothing to release.

    ``shapes`` are the model's parameter shapes (for the noise of an empty round). With no update and
    no noise the result is None: the model stays as it is. The noise is drawn from ``generator`` (the
    round's ``(seed, "dp-noise", round, "bs")`` stream).
    """
    summands = [list(u) for u in updates]
    if dp.noise_std > 0:
        if generator is None:
            raise ValueError("central DP noise needs the round's generator")
        summands.append(gaussian_noise(shapes, dp.noise_std, generator))
    if not summands:
        return None
    return scaled_sum(summands, [1.0] * len(summands), dp.denominator)
