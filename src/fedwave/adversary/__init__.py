"""How a UE misbehaves: faults (NaN, Inf, huge, zero updates, silence) and Byzantine attacks (sign flip,
scaling, Gaussian noise, label flipping, ALIE, IPM), one mechanism for both.

``FaultsConfig`` and ``AdversaryConfig`` (the ``faults`` and ``adversary`` config sections) say who and
how; :class:`MisbehaviourPlan` decides per round; :data:`BEHAVIOURS` is the registry of what a
misbehaving UE sends instead of its update.
"""

from fedwave.adversary.behaviours import (
    ATTACKS,
    BEHAVIOURS,
    FAULT_KINDS,
    Behaviour,
    BehaviourContext,
    alie_z,
    register_behaviour,
)
from fedwave.adversary.config import AdversaryConfig, FaultsConfig
from fedwave.adversary.plan import MisbehaviourPlan

__all__ = [
    "ATTACKS",
    "BEHAVIOURS",
    "FAULT_KINDS",
    "AdversaryConfig",
    "Behaviour",
    "BehaviourContext",
    "FaultsConfig",
    "MisbehaviourPlan",
    "alie_z",
    "register_behaviour",
]
