"""Inverting Gradients (Geiping et al. 2020).

Minimise ``1 - cos(g(x'), g) + tv_weight * TV(x')`` over the inputs ``x'`` with Adam on the sign of the
gradient (``attack.ig.signed``), the step size divided by 10 at 3/8, 5/8 and 7/8 of the iterations, and
``x'`` projected onto the data box after every step. Labels are shared ones or estimated from the last
layer (iDLG / count estimator), or optimised jointly as soft labels with ``attack.labels=joint``. Several
restarts from standard normal guesses; the one with the smallest cosine distance (without TV) is kept.
"""

from __future__ import annotations

import math

import torch

from fedwave.privacy.attacks.base import (
    Progress,
    Reconstruction,
    Restart,
    best_reconstruction,
    clamp_to_box,
    cosine_distance,
    random_init,
    resolve_labels,
    target_tensors,
    total_variation,
)
from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.attacks.observation import Observation, ServerView
from fedwave.privacy.attacks.simulate import UpdateReplica, resolve_schedule


def ig_attack(
    obs: Observation,
    server: ServerView,
    cfg: AttackConfig,
    *,
    rng: torch.Generator,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct the batch by cosine gradient matching with TV, signed Adam and a box constraint."""
    schedule = resolve_schedule(obs, cfg)
    labels, source = resolve_labels(obs, server, schedule, cfg, default="estimate")
    replica = UpdateReplica(server.model, server, schedule)
    target = target_tensors(obs)
    n, c = schedule.num_data, server.num_classes
    ic = cfg.ig
    lo, hi = server.box()
    milestones = [int(ic.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    total = ic.iterations * ic.restarts
    best: Restart | None = None
    for restart in range(ic.restarts):
        x = clamp_to_box(random_init(n, server, rng), server).requires_grad_(True)
        y_logits = torch.randn((n, c), generator=rng).requires_grad_(True)
        variables = [x] if labels is not None else [x, y_logits]
        opt = torch.optim.Adam(variables, lr=ic.step_size)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
        rec = math.inf
        for it in range(ic.iterations):
            opt.zero_grad()
            y = labels if labels is not None else torch.softmax(y_logits, dim=1)
            rec_loss = cosine_distance(replica(x, y), target)
            loss = rec_loss + ic.tv_weight * total_variation(x) if ic.tv_weight > 0 else rec_loss
            loss.backward()
            if ic.signed:
                for v in variables:
                    if v.grad is not None:
                        v.grad.sign_()
            opt.step()
            sched.step()
            with torch.no_grad():
                x.copy_(torch.maximum(torch.minimum(x, hi), lo))
            rec = float(rec_loss.detach())
            if progress is not None:
                progress(restart * ic.iterations + it + 1, total, rec)
            if not math.isfinite(rec):
                break
        y_final = labels if labels is not None else torch.softmax(y_logits.detach(), dim=1)
        final = float(cosine_distance(replica(x.detach(), y_final), target).detach())
        if math.isfinite(final) and (best is None or final < best[0]):
            best = (final, x.detach().clone(), y_logits.detach().clone())
    diagnostics = {"label_source": source, "objective": "cosine + tv", "tv_weight": ic.tv_weight}
    diagnostics |= {"restarts": ic.restarts, "guessed": schedule.guessed}
    return best_reconstruction(best, labels, server, rng, n, diagnostics)
