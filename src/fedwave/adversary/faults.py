"""Which UEs are faulty and when they misbehave: a pure function of the config, the seed and the round."""

from __future__ import annotations

from fedwave.adversary.behaviours import BEHAVIOURS, Behaviour
from fedwave.adversary.config import FaultsConfig
from fedwave.errors import ConfigError
from fedwave.rng import numpy_generator


class FaultPlan:
    """The faulty UEs of a run (drawn once from the stream (seed, "faults", "ues")) and their behaviour.

    Args:
        cfg: the ``faults`` section.
        num_ues: UEs in the cell.
        seed: the run seed.

    Raises:
        ConfigError: ``faults.ues`` names a UE outside the cell.
    """

    def __init__(self, cfg: FaultsConfig, num_ues: int, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self.behaviour: Behaviour | None = BEHAVIOURS[cfg.kind] if cfg.active else None
        if cfg.ues is not None:
            outside = [u for u in cfg.ues if u >= num_ues]
            if outside:
                raise ConfigError(f"faults.ues {outside} are not UEs of the cell (ids 0..{num_ues - 1})")
            self.faulty = frozenset(cfg.ues)
        else:
            count = round(cfg.fraction * num_ues) if cfg.active else 0
            rng = numpy_generator(seed, "faults", "ues")
            self.faulty = frozenset(int(u) for u in rng.choice(num_ues, size=count, replace=False))

    def misbehaves(self, round: int, ue: int, dispatch: int = 0) -> Behaviour | None:
        """The behaviour UE ``ue`` applies in ``round`` (its ``dispatch``-th time there), or None."""
        if self.behaviour is None or ue not in self.faulty:
            return None
        if self.cfg.probability < 1.0:
            u = numpy_generator(self.seed, "faults", round, ue, dispatch).random()
            if u >= self.cfg.probability:
                return None
        return self.behaviour

    def faulty_ues(self) -> list[int]:
        """The faulty UE ids, ascending."""
        return sorted(self.faulty)


def faulty_count(cfg: FaultsConfig, num_ues: int) -> int:
    """How many UEs ``cfg`` makes faulty in a cell of ``num_ues`` UEs."""
    if not cfg.active:
        return 0
    return len(cfg.ues) if cfg.ues is not None else round(cfg.fraction * num_ues)
