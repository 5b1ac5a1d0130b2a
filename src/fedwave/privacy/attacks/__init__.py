"""Gradient-leakage attacks run by an honest-but-curious BS on what it received (privacy.md, "Attacks").

``run_attack(name, obs, server, cfg, rng=...)`` with ``obs`` an :class:`Observation` (the decoded
update and the metadata the user's threat model exposes) and ``server`` a :class:`ServerView`; attacks:
``analytic``, ``idlg``, ``dlg``, ``ig`` (:func:`attack_names`). ``fedwave attack`` runs them on fresh UE
batches (:mod:`fedwave.privacy.attacks.runner`).
"""

from fedwave.privacy.attacks.base import Reconstruction
from fedwave.privacy.attacks.config import AttackConfig, AttackUserConfig, DLGConfig, GuessConfig, IGConfig
from fedwave.privacy.attacks.errors import AttackError, AttackNotApplicable, ThreatModelError
from fedwave.privacy.attacks.observation import Observation, ServerView
from fedwave.privacy.attacks.registry import attack_names, describe_attacks, get_attack, run_attack

__all__ = [
    "AttackConfig",
    "AttackError",
    "AttackNotApplicable",
    "AttackUserConfig",
    "DLGConfig",
    "GuessConfig",
    "IGConfig",
    "Observation",
    "Reconstruction",
    "ServerView",
    "ThreatModelError",
    "attack_names",
    "describe_attacks",
    "get_attack",
    "run_attack",
]
