"""What every attack shares: its result, label resolution, objectives and the optimisation loop pieces."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.attacks.errors import ThreatModelError
from fedwave.privacy.attacks.labels import estimate_labels
from fedwave.privacy.attacks.observation import Observation, ServerView
from fedwave.privacy.attacks.simulate import LocalSchedule, slot_labels

#: ``progress(done, total, loss)``: called after each optimisation step (loss = current gradient loss).
Progress = Callable[[int, int, float], None]


@dataclass
class Reconstruction:
    """An attack's output.

    Attributes:
        data: reconstructed inputs ``(N, *input_shape)`` in normalised coordinates, inside the data box.
        labels: reconstructed labels ``(N,)`` (int64), in the order of ``data``.
        diagnostics: how it was obtained (label source, guesses used, final gradient loss, restarts...),
            JSON-serialisable.
    """

    data: torch.Tensor
    labels: torch.Tensor
    diagnostics: dict[str, Any] = field(default_factory=dict)


def resolve_labels(
    obs: Observation,
    server: ServerView,
    schedule: LocalSchedule,
    cfg: AttackConfig,
    default: Literal["estimate", "joint"],
) -> tuple[torch.Tensor | None, str]:
    """The labels an attack uses, and where they came from (None with ``"joint"``: optimise them).

    ``attack.labels=auto`` takes shared labels (per-step labels of ``local_hyperparams`` first, then the
    sorted ``labels``), else the attack's ``default``.
    """
    mode = cfg.labels
    n = schedule.num_data
    if mode == "auto":
        per_slot = slot_labels(schedule)
        if per_slot is not None:
            return per_slot, "shared (per local step)"
        shared = obs.meta("labels")
        if shared is not None:
            labels = torch.as_tensor(shared).long().flatten()
            if labels.numel() != n:
                raise ThreatModelError(
                    f"the user shared {labels.numel()} labels but the attack assumes {n} samples; "
                    "fix attack.guess.num_data_points"
                )
            return labels, "shared"
        mode = default
    if mode == "estimate":
        how = "iDLG sign rule" if n == 1 else "bias-gradient count estimator"
        return estimate_labels(obs, server, schedule), f"estimated ({how})"
    return None, "joint (soft labels optimised)"


def euclidean(pred: Sequence[torch.Tensor], target: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum of squared differences over all tensors (DLG's gradient distance)."""
    return torch.stack([(p - t).pow(2).sum() for p, t in zip(pred, target)]).sum()


def cosine_distance(pred: Sequence[torch.Tensor], target: Sequence[torch.Tensor]) -> torch.Tensor:
    """``1 - <pred, target> / (|pred| |target|)`` over all tensors flattened together (IG's objective)."""
    dot = torch.stack([(p * t).sum() for p, t in zip(pred, target)]).sum()
    pn = torch.stack([p.pow(2).sum() for p in pred]).sum().sqrt()
    tn = torch.stack([t.pow(2).sum() for t in target]).sum().sqrt()
    return 1.0 - dot / (pn * tn + 1e-12)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring values along each spatial axis, summed over axes."""
    tv = x.new_zeros(())
    for axis in range(2, x.dim()):
        if x.shape[axis] > 1:
            tv = (
                tv
                + (x.narrow(axis, 1, x.shape[axis] - 1) - x.narrow(axis, 0, x.shape[axis] - 1)).abs().mean()
            )
    return tv


def random_init(n: int, server: ServerView, rng: torch.Generator) -> torch.Tensor:
    """A standard normal starting guess ``(n, *input_shape)`` in normalised coordinates."""
    return torch.randn((n, *server.input_shape), generator=rng)


def clamp_to_box(x: torch.Tensor, server: ServerView) -> torch.Tensor:
    """``x`` clipped to the data range (normalised coordinates)."""
    lo, hi = server.box()
    return torch.maximum(torch.minimum(x, hi.to(x.dtype)), lo.to(x.dtype))


#: An optimisation restart's outcome: (final gradient loss, inputs, label logits).
Restart = tuple[float, torch.Tensor, torch.Tensor]


def best_reconstruction(
    best: Restart | None,
    labels: torch.Tensor | None,
    server: ServerView,
    rng: torch.Generator,
    n: int,
    diagnostics: dict[str, Any],
) -> Reconstruction:
    """The reconstruction of the restart ``best`` kept (the lowest gradient loss), inside the data box;
    with no restart kept (all diverged) a random start flagged with loss inf. Labels: the given ones,
    else the argmax of the restart's logits."""
    if best is None:
        best = (math.inf, random_init(n, server, rng), torch.zeros(n, server.num_classes))
    loss, data, logits = best
    out = labels if labels is not None else logits.argmax(dim=1)
    return Reconstruction(clamp_to_box(data, server), out.long(), {**diagnostics, "gradient_loss": loss})


def target_tensors(obs: Observation) -> list[torch.Tensor]:
    """The received tensors as float32 constants to match against."""
    return [g.detach().float() for g in obs.gradients]
