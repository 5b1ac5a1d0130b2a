"""Analytic input recovery through a first fully connected layer with bias.

For ``z = W x + b`` the gradients of any loss satisfy ``dL/dW_i = dL/db_i * x`` for one sample, so every
row with ``dL/db_i != 0`` gives ``x = dL/dW_i / dL/db_i`` exactly (Phong et al. 2017; Geiping et al. 2020,
Prop. 3.1). fedwave uses the least-squares combination of all rows, ``x = sum_i db_i dW_i / sum_i db_i^2``,
which equals that ratio without noise and averages noise over rows with it. The same holds for a
multi-step update of one sample (the sample is the same in every step, the learning rate cancels).

Batches of N > 1: row i gives ``sum_n d_ni x_n / sum_n d_ni``, a weighted mix of the samples that reached
unit i. Rows reached by one sample only (frequent behind ReLU) give that sample exactly and agree with
each other, so the N reconstructions are the centres of the N largest groups of mutually agreeing row
ratios (relative distance below ``1e-3``); when fewer than N such groups exist the remaining slots hold
the dataset mean and the diagnostics say how many samples were recovered. Labels come from the last layer
(iDLG / count estimator) unless shared; for batches they are given to the recovered samples by
:func:`~fedwave.privacy.attacks.labels.assign_labels`.

Assumes the model's first parameterised layer is an ``nn.Linear`` fed with the flattened input.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fedwave.privacy.attacks.base import Progress, Reconstruction, clamp_to_box, resolve_labels
from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.attacks.errors import AttackNotApplicable, ThreatModelError
from fedwave.privacy.attacks.labels import assign_labels
from fedwave.privacy.attacks.observation import Observation, ServerView
from fedwave.privacy.attacks.simulate import LocalSchedule, num_data_points, resolve_schedule

_GROUP_RTOL = 1e-3
_ROW_RTOL = 1e-6


def first_linear(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Indices (in ``model.parameters()``) of the weight and bias of the model's first layer."""
    index = {id(p): i for i, p in enumerate(model.parameters())}
    first = next((m for m in model.modules() if any(True for _ in m.parameters(recurse=False))), None)
    if not isinstance(first, nn.Linear):
        raise AttackNotApplicable(
            "the analytic attack needs a model whose first layer is fully connected (nn.Linear); "
            f"the first parameterised layer is {type(first).__name__}. Use model mlp or 2nn, or attack dlg/ig"
        )
    if first.bias is None:
        raise AttackNotApplicable("the analytic attack needs the first fully connected layer to have a bias")
    if first.in_features != math.prod(input_shape):
        raise AttackNotApplicable(
            f"the first fully connected layer takes {first.in_features} inputs, "
            f"not the flattened sample ({math.prod(input_shape)} values)"
        )
    return index[id(first.weight)], index[id(first.bias)]


def _groups(candidates: torch.Tensor, n: int) -> list[torch.Tensor]:
    """Up to ``n`` centres of the largest groups of candidates that agree within ``_GROUP_RTOL``."""
    dist = torch.cdist(candidates, candidates)
    scale = candidates.norm(dim=1, keepdim=True).clamp_min(1e-12)
    close = dist <= _GROUP_RTOL * scale
    alive = torch.ones(candidates.shape[0], dtype=torch.bool)
    centres: list[torch.Tensor] = []
    while len(centres) < n and bool(alive.any()):
        counts = (close & alive[None, :]).sum(dim=1) * alive
        best = int(torch.argmax(counts).item())
        members = close[best] & alive
        if int(members.sum()) < 2 and centres:
            break  # singletons are mixtures, not samples
        centres.append(candidates[members].mean(dim=0))
        alive &= ~members
    return centres


def analytic_attack(
    obs: Observation,
    server: ServerView,
    cfg: AttackConfig,
    *,
    rng: torch.Generator,
    progress: Progress | None = None,
) -> Reconstruction:
    """Recover the inputs from the first layer's weight and bias gradients (see the module docstring)."""
    w_idx, b_idx = first_linear(server.model, server.input_shape)
    guessed: dict[str, Any] = {}
    n = num_data_points(obs, cfg, guessed)
    try:
        schedule = resolve_schedule(obs, cfg)
    except ThreatModelError:
        if obs.kind != "update":
            raise
        schedule = LocalSchedule("update", n, guessed=guessed)  # labels from signs only
    dw, db = obs.gradients[w_idx].double(), obs.gradients[b_idx].double()
    peak = float(db.abs().max()) if db.numel() else 0.0
    if not peak > 0 or not math.isfinite(peak):
        raise ThreatModelError(
            "the received update carries no usable first-layer bias gradient (all zero or not finite, "
            "e.g. removed by the codec); the analytic attack cannot divide by it"
        )
    rows = db.abs() > _ROW_RTOL * peak
    if n == 1:
        w = db[rows]
        centres = [(w[:, None] * dw[rows]).sum(0) / w.pow(2).sum()]
    else:
        centres = _groups(dw[rows] / db[rows, None], n)
    recovered = len(centres)
    while len(centres) < n:
        centres.append(torch.zeros(dw.shape[1], dtype=torch.float64))
    data = torch.stack(centres).float().reshape(n, *server.input_shape)
    labels, source = resolve_labels(obs, server, schedule, cfg, default="estimate")
    if labels is not None and n > 1:
        labels = assign_labels(obs, server, schedule, data, labels)
        source += ", assigned to samples by last-layer alignment"
    if progress is not None:
        progress(1, 1, 0.0)
    return Reconstruction(
        clamp_to_box(data, server),
        labels if labels is not None else torch.zeros(n, dtype=torch.long),
        {
            "label_source": source,
            "rows_used": int(rows.sum()),
            "samples_recovered": recovered,
            "guessed": {**schedule.guessed, **guessed},
        },
    )
