"""The privacy ledger of a run: what the FL loop reports after each round, and epsilon so far.

Client level (one accountant for all UEs, rate q):

* central noise: :meth:`PrivacyLedger.client_round` with no arguments - one step at z.
* distributed noise: :meth:`PrivacyLedger.client_round` with ``planned`` (UEs told to add a share this
  round) and ``delivered`` (shares in the sum the BS released). The step is taken at the delivered noise
  multiplier z sqrt(delivered / planned); with ``delivered == 0`` the released sum holds no UE's data and
  no step is taken.

Sample level (one accountant per UE, rate q_k): :meth:`PrivacyLedger.ue_released` with the number of
DP-SGD steps behind an update the BS received; epsilon is the largest over UEs.

``dp.clip: null`` (no clipping) is accounted as z = 0: epsilon is infinite as soon as anything is
released. The ledger's state goes into checkpoints (:meth:`state_dict`), replayed bit for bit.
"""

from __future__ import annotations

import copy
from typing import Any

from fedwave.privacy.dp.accountant import Accountant, make_accountant
from fedwave.privacy.dp.mechanisms import effective_noise_multiplier
from fedwave.privacy.dp.plan import PrivacyPlan


class PrivacyLedger:
    """Accountants of one run, fed with the noise actually delivered.

    Args:
        plan: the run's :class:`PrivacyPlan` (level, accountant, delta, clip, resolved z, schedules).
    """

    def __init__(self, plan: PrivacyPlan) -> None:
        self.plan = plan
        self.level = plan.level
        self.delta = plan.delta
        self.z = plan.noise_multiplier if plan.clip is not None else 0.0
        self.client: Accountant | None = None
        self.rates: dict[int, float] = {}
        self.steps_per_round: dict[int, int] = {}
        self.ues: dict[int, Accountant] = {}
        if self.level == "client":
            (schedule,) = plan.schedules
            self.sample_rate = schedule.sample_rate
            self.client = make_accountant(plan.accountant)
        else:
            self.rates = {ue: s.sample_rate for s, ues in plan.schedules.items() for ue in ues}
            self.steps_per_round = {ue: s.steps_per_round for s, ues in plan.schedules.items() for ue in ues}

    # ------------------------------------------------------------------ client level
    def client_round(self, *, delivered: int | None = None, planned: int | None = None) -> float:
        """Record one released aggregate; return the noise multiplier accounted (0.0: no step taken).

        Central placement: call without arguments. Distributed placement: give ``planned`` and
        ``delivered`` (0 <= delivered <= planned).
        """
        if self.client is None:
            raise ValueError("client_round is for dp.level=client")
        if planned is None and delivered is None:
            z = self.z
        elif planned is None or delivered is None:
            raise ValueError("distributed noise needs both planned and delivered share counts")
        elif delivered == 0:
            return 0.0
        else:
            z = effective_noise_multiplier(self.z, delivered, planned)
        self.client.step(z, self.sample_rate)
        return z

    def next_round_epsilon(self) -> float:
        """Epsilon after one more round at the planned noise (for ``dp.stop_at_epsilon``).

        Client level: one more step at z. Sample level: the largest over UEs if every UE released one
        more round of its planned DP-SGD steps (an upper bound: not every UE trains every round). UEs
        with the same history and schedule are evaluated once.
        """
        if self.client is not None:
            trial = copy.deepcopy(self.client)
            trial.step(self.z, self.sample_rate)
            return trial.get_epsilon(self.delta)
        worst = 0.0
        seen: set[tuple[Any, ...]] = set()
        for ue, q in self.rates.items():
            acc = self.ues.get(ue)
            key = (acc.calls if acc is not None else (), q, self.steps_per_round[ue])
            if key in seen:
                continue
            seen.add(key)
            trial = copy.deepcopy(acc) if acc is not None else make_accountant(self.plan.accountant)
            trial.step(self.z, q, self.steps_per_round[ue])
            worst = max(worst, trial.get_epsilon(self.delta))
        return worst

    # ------------------------------------------------------------------ sample level
    def ue_released(self, ue: int, steps: int) -> None:
        """Record that UE ``ue``'s update, made of ``steps`` DP-SGD steps at its rate q_k, was released."""
        if self.level != "sample":
            raise ValueError("ue_released is for dp.level=sample")
        if ue not in self.rates:
            raise ValueError(f"UE {ue} is not in the plan ({len(self.rates)} UEs)")
        if ue not in self.ues:
            self.ues[ue] = make_accountant(self.plan.accountant)
        self.ues[ue].step(self.z, self.rates[ue], steps)

    def ue_epsilons(self) -> dict[int, float]:
        """Epsilon of every planned UE so far (0 for those with nothing released).

        UEs with the same recorded steps share one accountant query.
        """
        cache: dict[tuple[Any, ...], float] = {}
        out: dict[int, float] = {}
        for ue in self.rates:
            acc = self.ues.get(ue)
            if acc is None:
                out[ue] = 0.0
                continue
            key = acc.calls
            if key not in cache:
                cache[key] = acc.get_epsilon(self.delta)
            out[ue] = cache[key]
        return out

    # ------------------------------------------------------------------ both
    def epsilon(self) -> float:
        """Epsilon so far at the plan's delta: the client accountant's, or the largest over UEs."""
        if self.client is not None:
            return self.client.get_epsilon(self.delta)
        return max(self.ue_epsilons().values(), default=0.0)

    def state_dict(self) -> dict[str, Any]:
        """The accountants' states, for checkpoints."""
        if self.client is not None:
            return {"client": self.client.state_dict()}
        return {"ues": {ue: acc.state_dict() for ue, acc in self.ues.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into a fresh ledger of the same plan."""
        if self.client is not None:
            self.client = make_accountant(self.plan.accountant)
            self.client.load_state_dict(state["client"])
            return
        self.ues = {}
        for ue, acc_state in state["ues"].items():
            self.ues[int(ue)] = make_accountant(self.plan.accountant)
            self.ues[int(ue)].load_state_dict(acc_state)
