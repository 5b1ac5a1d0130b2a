"""iDLG (Zhao et al. 2020): the label from the last layer's gradient signs, then gradient matching.

Labels: for one sample the iDLG sign rule; for batches the bias-gradient count estimator (see
:mod:`fedwave.privacy.attacks.labels`); shared labels are used as they are with ``attack.labels=auto``.
Labels are never optimised (``attack.labels=joint`` is read as ``estimate``). Inputs: DLG's Euclidean
gradient matching with L-BFGS (``attack.dlg.*``) with those labels fixed.
"""

from __future__ import annotations

import torch

from fedwave.privacy.attacks.base import Progress, Reconstruction
from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.attacks.dlg import euclidean_matching
from fedwave.privacy.attacks.observation import Observation, ServerView


def idlg_attack(
    obs: Observation,
    server: ServerView,
    cfg: AttackConfig,
    *,
    rng: torch.Generator,
    progress: Progress | None = None,
) -> Reconstruction:
    """Labels from the last layer (or shared), inputs by DLG with those labels fixed."""
    if cfg.labels == "joint":
        cfg = cfg.model_copy(update={"labels": "estimate"})
    return euclidean_matching(obs, server, cfg, rng=rng, progress=progress, label_default="estimate")
