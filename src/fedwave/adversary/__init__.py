"""How a UE misbehaves: faults (NaN, Inf, huge, zero updates, silence), one mechanism for all.

``FaultsConfig`` (the ``faults`` config section) says who and how; :class:`FaultPlan` decides per
round; :data:`BEHAVIOURS` is the registry of what a misbehaving UE sends instead of its update.
"""

from fedwave.adversary.behaviours import BEHAVIOURS, Behaviour, BehaviourContext, register_behaviour
from fedwave.adversary.config import FaultsConfig
from fedwave.adversary.faults import FaultPlan, faulty_count

__all__ = [
    "BEHAVIOURS",
    "Behaviour",
    "BehaviourContext",
    "FaultPlan",
    "FaultsConfig",
    "faulty_count",
    "register_behaviour",
]
