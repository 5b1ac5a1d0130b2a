"""Who misbehaves and when: a pure function of the config, the seed and the round.

Malicious UEs (``adversary``) are drawn first from the stream (seed, "adversary", "ues"); faulty UEs
(``faults``) from the stream (seed, "faults", "ues") among the others, so a UE is never both. Whether a
faulty UE's fault strikes in a round comes from (seed, "faults", round, ue, dispatch).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedwave.adversary.behaviours import BEHAVIOURS, Behaviour
from fedwave.adversary.config import AdversaryConfig, FaultsConfig
from fedwave.errors import ConfigError
from fedwave.rng import numpy_generator


class MisbehaviourPlan:
    """The faulty and malicious UEs of a run, and what each does.

    Args:
        faults: the ``faults`` section.
        adversary: the ``adversary`` section (None: no attackers).
        num_ues: UEs in the cell.
        seed: the run seed.

    Raises:
        ConfigError: a list names a UE outside the cell, or a UE is both faulty and malicious.
    """

    def __init__(
        self, faults: FaultsConfig, adversary: AdversaryConfig | None, num_ues: int, seed: int
    ) -> None:
        self.faults_cfg = faults
        self.adversary_cfg = adversary if adversary is not None else AdversaryConfig()
        self.seed = seed
        adv = self.adversary_cfg
        self.attack: Behaviour | None = BEHAVIOURS[adv.attack] if adv.active else None
        self.fault: Behaviour | None = BEHAVIOURS[faults.kind] if faults.active else None
        self.malicious = self._pick(
            adv.ues, adv.count(num_ues) if adv.active else 0, num_ues, "adversary", frozenset()
        )
        self.faulty = self._pick(
            faults.ues, faults.count(num_ues) if faults.active else 0, num_ues, "faults", self.malicious
        )
        both = self.malicious & self.faulty
        if both:
            raise ConfigError(
                f"UEs {sorted(both)} are in both faults.ues and adversary.ues; a UE is one or the other"
            )
        self.attack_params: Mapping[str, float | None] = {
            "factor": adv.factor,
            "sigma": adv.sigma,
            "z": adv.z,
            "epsilon": adv.epsilon,
        }
        self.fault_params: Mapping[str, float | None] = {"scale": faults.scale}

    def _pick(
        self, ues: list[int] | None, count: int, num_ues: int, section: str, taken: frozenset[int]
    ) -> frozenset[int]:
        if ues is not None:
            outside = [u for u in ues if u >= num_ues]
            if outside:
                raise ConfigError(f"{section}.ues {outside} are not UEs of the cell (ids 0..{num_ues - 1})")
            return frozenset(ues)
        pool = np.array([u for u in range(num_ues) if u not in taken], dtype=int)
        if count > pool.size:
            raise ConfigError(f"{section}.fraction asks for {count} UEs but only {pool.size} are left")
        rng = numpy_generator(self.seed, section, "ues")
        return frozenset(int(u) for u in rng.choice(pool, size=count, replace=False))

    def behaviour_of(
        self, round: int, ue: int, dispatch: int = 0
    ) -> tuple[Behaviour, Mapping[str, float | None]] | None:
        """What UE ``ue`` does in ``round`` (its ``dispatch``-th time there): a behaviour and its params,
        or None (honest)."""
        if self.attack is not None and ue in self.malicious:
            return self.attack, self.attack_params
        if self.fault is None or ue not in self.faulty:
            return None
        if self.faults_cfg.probability < 1.0:
            u = numpy_generator(self.seed, "faults", round, ue, dispatch).random()
            if u >= self.faults_cfg.probability:
                return None
        return self.fault, self.fault_params
