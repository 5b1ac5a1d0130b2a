"""Deep Leakage from Gradients (Zhu et al. 2019).

Dummy inputs (standard normal) and, when the labels are not known, dummy label logits are optimised
jointly with L-BFGS so that the replica's update (gradient, or unrolled local SGD steps) matches the
received one in Euclidean distance ``sum_l |g'_l - g_l|^2`` (divided by the constant ``|g|^2``, which
keeps the minimiser and makes L-BFGS's tolerances independent of the update's scale). The soft labels
are ``softmax(logits)``; the reported label is their argmax. Restarts that end in NaN/Inf (L-BFGS can
diverge) are discarded; of the others the one with the smallest gradient distance is kept. The result
is clipped to the data box.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from fedwave.privacy.attacks.base import (
    Progress,
    Reconstruction,
    Restart,
    best_reconstruction,
    euclidean,
    random_init,
    resolve_labels,
    target_tensors,
)
from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.attacks.observation import Observation, ServerView
from fedwave.privacy.attacks.simulate import UpdateReplica, resolve_schedule


def dlg_attack(
    obs: Observation,
    server: ServerView,
    cfg: AttackConfig,
    *,
    rng: torch.Generator,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct the batch by Euclidean gradient matching with L-BFGS (labels jointly if unknown)."""
    return euclidean_matching(obs, server, cfg, rng=rng, progress=progress, label_default="joint")


def euclidean_matching(
    obs: Observation,
    server: ServerView,
    cfg: AttackConfig,
    *,
    rng: torch.Generator,
    progress: Progress | None,
    label_default: Literal["joint", "estimate"],
) -> Reconstruction:
    """DLG's optimisation; unknown labels are optimised (``"joint"``) or estimated (``"estimate"``)."""
    schedule = resolve_schedule(obs, cfg)
    labels, source = resolve_labels(obs, server, schedule, cfg, default=label_default)
    replica = UpdateReplica(server.model, server, schedule)
    target = target_tensors(obs)
    # dividing by |g|^2 (a constant) keeps the minimiser and makes L-BFGS's tolerances scale-free
    scale = 1.0 / max(float(sum(t.double().pow(2).sum() for t in target)), 1e-30)
    n, c = schedule.num_data, server.num_classes
    dc = cfg.dlg
    total = dc.iterations * dc.restarts
    best: Restart | None = None
    diverged = 0
    for restart in range(dc.restarts):
        x = random_init(n, server, rng).requires_grad_(True)
        y_logits = torch.randn((n, c), generator=rng).requires_grad_(True)
        variables = [x] if labels is not None else [x, y_logits]
        opt = torch.optim.LBFGS(
            variables,
            lr=dc.lr,
            max_iter=dc.max_eval,
            history_size=100,
            tolerance_grad=1e-12,
            tolerance_change=1e-14,
            line_search_fn="strong_wolfe" if dc.line_search else None,
        )

        def closure(
            x: torch.Tensor = x, y_logits: torch.Tensor = y_logits, opt: torch.optim.LBFGS = opt
        ) -> torch.Tensor:
            opt.zero_grad()
            y = labels if labels is not None else torch.softmax(y_logits, dim=1)
            loss = euclidean(replica(x, y), target) * scale
            loss.backward()
            return loss

        loss_value = math.inf
        for it in range(dc.iterations):
            loss_value = float(torch.as_tensor(opt.step(closure)).detach())
            if progress is not None:
                progress(restart * dc.iterations + it + 1, total, loss_value)
            if not math.isfinite(loss_value) or not bool(torch.isfinite(x).all()) or loss_value <= dc.tol:
                break
        if not (math.isfinite(loss_value) and bool(torch.isfinite(x).all())):
            diverged += 1
            continue
        y_final = labels if labels is not None else torch.softmax(y_logits.detach(), dim=1)
        final = float(euclidean(replica(x.detach(), y_final), target).detach()) * scale
        if best is None or final < best[0]:
            best = (final, x.detach().clone(), y_logits.detach().clone())
    diagnostics = {"label_source": source, "objective": "euclidean", "restarts": dc.restarts}
    diagnostics |= {"diverged_restarts": diverged, "guessed": schedule.guessed}
    return best_reconstruction(best, labels, server, rng, n, diagnostics)
