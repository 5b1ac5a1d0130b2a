"""Privacy accountants: the bookkeeping of the Poisson-subsampled Gaussian mechanism, by name.

The mechanism (clip, noise: :mod:`fedwave.privacy.dp.mechanisms`, :mod:`fedwave.privacy.dp.dpsgd`) is
kept apart from its bookkeeping, as in Opacus. An accountant records steps ``(noise_multiplier z,
sample_rate q, steps)`` and answers ``get_epsilon(delta)``. Steps may differ from one another (a round
whose delivered noise was lower than planned is a step with its own z): the history is heterogeneous.

Three accountants, none re-derived here:

* ``rdp``: Renyi DP of the sampled Gaussian from ``opacus.accountants.analysis.rdp`` (``compute_rdp``,
  and ``get_privacy_spent`` for the conversion to (epsilon, delta)), on Opacus's default orders extended
  to 512 so that small epsilons are not cut off. RDP is additive over steps, so the RDP vector of each
  distinct (q, z) is computed once and reused.
* ``prv``: Opacus's ``PRVAccountant`` (numerical composition of privacy random variables, Gopi et al.
  2021); returns its upper bound, with epsilon error ``eps_error``.
* ``pld``: Google dp-accounting's ``PLDAccountant`` (privacy loss distributions, pessimistic estimate)
  over ``PoissonSampledDpEvent(q, GaussianDpEvent(z))``, composed as steps arrive.

Special steps are handled before any library is called: a step with q = 0 or steps = 0 releases nothing
and costs nothing; a step with z = 0 and q > 0 releases data without noise, so epsilon is infinite.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from fedwave.errors import ConfigError

Step = tuple[float, float, int]  # (noise multiplier z, sample rate q, number of steps)

RDP_ORDERS: tuple[float, ...] = (
    *(1 + x / 10.0 for x in range(1, 100)),
    *range(12, 64),
    *(64, 80, 96, 128, 160, 192, 256, 384, 512),
)

_REGISTRY: dict[str, type[Accountant]] = {}


def register(name: str) -> Callable[[type[Accountant]], type[Accountant]]:
    """Register an accountant class under ``name`` (decorator)."""

    def wrap(cls: type[Accountant]) -> type[Accountant]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def accountant_names() -> list[str]:
    """The registered accountant names, sorted."""
    return sorted(_REGISTRY)


def make_accountant(name: str) -> Accountant:
    """A fresh accountant by name (``rdp``, ``prv``, ``pld``); ConfigError naming ``dp.accountant``."""
    if name not in _REGISTRY:
        valid = ", ".join(accountant_names())
        raise ConfigError(f"dp.accountant: unknown accountant '{name}'; valid: {valid}")
    return _REGISTRY[name]()


class Accountant(ABC):
    """Records Poisson-subsampled Gaussian steps and converts them to epsilon at a given delta."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        self.history: list[Step] = []
        self._calls: list[Step] = []  # every recorded step() call, for an exact replay on resume

    def step(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Record ``steps`` releases at noise multiplier z and rate q (equal consecutive steps merge)."""
        z, q, n = float(noise_multiplier), float(sample_rate), int(steps)
        if not (math.isfinite(z) and z >= 0):
            raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier}")
        if not 0 <= q <= 1:
            raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
        if n < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if n == 0 or q == 0:
            return
        self._calls.append((z, q, n))
        if self.history and self.history[-1][:2] == (z, q):
            self.history[-1] = (z, q, self.history[-1][2] + n)
        else:
            self.history.append((z, q, n))

    @property
    def calls(self) -> tuple[Step, ...]:
        """Every recorded :meth:`step` call, in order (equal calls give bit-identical epsilons)."""
        return tuple(self._calls)

    @property
    def steps(self) -> int:
        """Total number of recorded steps."""
        return sum(n for _, _, n in self.history)

    def get_epsilon(self, delta: float) -> float:
        """Epsilon of the recorded steps at ``delta`` (0 with no steps, inf if a step had z = 0)."""
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if not self.history:
            return 0.0
        if any(z == 0 for z, _, _ in self.history):
            return math.inf
        return float(self._epsilon(delta))

    def state_dict(self) -> dict[str, Any]:
        """The accountant's state for checkpoints: its name and every recorded step call, in order."""
        return {"accountant": self.name, "steps": [list(c) for c in self._calls]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replay saved step calls into an empty accountant of the same name (bit-identical epsilons)."""
        if state.get("accountant") != self.name:
            raise ValueError(f"state of accountant '{state.get('accountant')}' loaded into '{self.name}'")
        if self._calls:
            raise ValueError("load_state_dict needs a fresh accountant (this one has recorded steps)")
        for z, q, n in state["steps"]:
            self.step(z, q, n)

    @abstractmethod
    def _epsilon(self, delta: float) -> float:
        """Epsilon of ``self.history`` (every z > 0, q > 0, steps > 0)."""


@lru_cache(maxsize=1)
def opacus_rdp_analysis() -> ModuleType:
    """Opacus's ``opacus/accountants/analysis/rdp.py`` (the module itself, unchanged).

    It needs only numpy and scipy, but ``import opacus`` first runs the package's ``__init__``, which
    imports the privacy engine, grad samplers and ``torch.distributed`` (seconds of start-up for a
    command that only accounts). So the module is loaded from its file under a private name; if that
    fails (a different Opacus layout), the regular import is used.
    """
    spec = importlib.util.find_spec("opacus")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "accountants" / "analysis" / "rdp.py"
        file_spec = importlib.util.spec_from_file_location("fedwave_opacus_rdp_analysis", path)
        if path.is_file() and file_spec is not None and file_spec.loader is not None:
            module = importlib.util.module_from_spec(file_spec)
            file_spec.loader.exec_module(module)
            if hasattr(module, "compute_rdp") and hasattr(module, "get_privacy_spent"):
                return module
    from opacus.accountants.analysis import rdp

    return rdp


@lru_cache(maxsize=256)
def _rdp_one_step(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    rdp = opacus_rdp_analysis().compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDP_ORDERS
    )
    return np.asarray(rdp, dtype=np.float64)


@register("rdp")
class RDPAccountant(Accountant):
    """Renyi DP of the sampled Gaussian (Opacus ``compute_rdp``; conversion of Balle et al. 2020)."""

    description = "Opacus RDP (sampled Gaussian, Mironov et al. 2019)"

    def rdp(self) -> np.ndarray:
        """The total RDP at each order of :data:`RDP_ORDERS`."""
        total = np.zeros(len(RDP_ORDERS))
        for z, q, n in self.history:
            total = total + n * _rdp_one_step(q, z)
        return total

    def _epsilon(self, delta: float) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "optimal order is the largest alpha": still a valid bound
            eps, _ = opacus_rdp_analysis().get_privacy_spent(
                orders=list(RDP_ORDERS), rdp=self.rdp(), delta=delta
            )
        return float(eps)


@register("prv")
class PRVAccountant(Accountant):
    """Opacus ``PRVAccountant`` (Gopi et al. 2021): an upper bound within ``eps_error`` of the truth."""

    description = "Opacus PRV (numerical composition, Gopi et al. 2021)"

    def __init__(self, eps_error: float = 0.01) -> None:
        super().__init__()
        self.eps_error = eps_error

    def _epsilon(self, delta: float) -> float:
        from opacus.accountants import PRVAccountant as OpacusPRV

        acc = OpacusPRV()
        acc.history = [(z, q, n) for z, q, n in self.history]
        # log(1 - q) at q = 1 is -inf by design in Opacus's PRV; its domain bound (an RDP bound) may
        # note that its optimal order is the largest one, which only loosens the domain.
        with np.errstate(divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return float(acc.get_epsilon(delta, eps_error=self.eps_error))


@register("pld")
class PLDAccountant(Accountant):
    """Google dp-accounting ``PLDAccountant`` (pessimistic PLD), composed step by step."""

    description = "dp-accounting PLD (privacy loss distributions)"

    def __init__(self, value_discretization_interval: float = 1e-3) -> None:
        super().__init__()
        self.value_discretization_interval = value_discretization_interval
        self._pld = self._fresh()

    def _fresh(self) -> Any:
        from dp_accounting.pld.pld_privacy_accountant import PLDAccountant as GooglePLD

        return GooglePLD(value_discretization_interval=self.value_discretization_interval)

    def step(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Record the steps (see :meth:`Accountant.step`) and compose them into the PLD."""
        before = self.steps
        super().step(noise_multiplier, sample_rate, steps)
        if self.steps == before or noise_multiplier == 0:
            return  # nothing released, or epsilon is infinite from now on: nothing to compose
        from dp_accounting import dp_event

        event = dp_event.PoissonSampledDpEvent(
            float(sample_rate), dp_event.GaussianDpEvent(float(noise_multiplier))
        )
        self._pld.compose(event, int(steps))

    def _epsilon(self, delta: float) -> float:
        return float(self._pld.get_epsilon(delta))
