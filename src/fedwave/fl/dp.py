"""Differential privacy in a run: what the FL loop does and accounts each round (``dp.level != off``).

:class:`RunPrivacy` holds the run's plan (:func:`~fedwave.privacy.dp.plan.plan_privacy`, z resolved)
and its :class:`~fedwave.privacy.dp.ledger.PrivacyLedger`; the driver calls it at these points:

* client level, on each selected UE before encoding (:meth:`RunPrivacy.privatize`): clip the update to S
  (an update holding NaN or Inf becomes zeros: a diverged local model must not cost the round its noise
  share); with distributed placement add the UE's share N(0, (z S)^2 / planned), ``planned`` = UEs
  selected this round, from the stream ``(seed, "dp-noise", round, ue)``. A faulty UE misbehaves after
  this (it does not follow the protocol); its update is then not counted as a delivered share.
* client level, at the BS: :meth:`RunPrivacy.aggregation` configures the BS's DP-FedAvg mean
  (:mod:`fedwave.server.dp`); central noise is drawn from ``(seed, "dp-noise", round, "bs")``.
* end of round (:meth:`RunPrivacy.end_round`, before the record is handed on and checkpointed):
  account, write ``record.epsilon`` and the round's DP figures into ``record.extra``, and say whether
  ``dp.stop_at_epsilon`` ends the run.

Accounting per round:

* client level, central: one step at z in every round, also when no UE was selected or nothing arrived
  (the BS released a noised model all the same). A rolled-back round is accounted too: its noised result
  was computed, and whether it is rolled back is decided from it.
* client level, distributed: one step at the delivered z sqrt(m / planned), m = honest updates the BS
  decoded and did not reject (a dropped, lost, undecodable, rejected or faulty UE's share is missing from
  the sum); no step when m = 0 (nothing of any UE's data was released).
* sample level: each UE's accountant takes its round's DP-SGD steps when its update went on the air
  (at least one transmission attempt), whether or not the BS received it: a sample-level update is itself
  the DP release, and an eavesdropper may have received what the BS lost. A UE that never transmitted
  (cut by the deadline before uploading, silent) released nothing.

Whom epsilon protects against: everyone who sees the global models the BS broadcasts. Per-UE figures the
simulator records (timeline, statuses, norms) are instrumentation, not releases. Client level, central:
the BS is trusted and every update crosses the air unnoised. Distributed: against the BS and an
eavesdropper on the uplink each update carries only its share (noise multiplier z / sqrt(planned)).
Sample level: the bound holds against the BS and eavesdroppers too. ``fl.weighting`` does not apply at
client level (every update has weight 1; the UE's sample count is not used).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fedwave.config import Config
from fedwave.errors import ConfigError
from fedwave.privacy.dp.ledger import PrivacyLedger
from fedwave.privacy.dp.mechanisms import add_gaussian_noise, clip_update, distributed_share_std
from fedwave.privacy.dp.plan import PrivacyPlan, client_sample_rate, plan_privacy, resolved_dp_config
from fedwave.records import RoundRecord, UEEvent
from fedwave.rng import Key, torch_generator
from fedwave.server.dp import DPAggregation
from fedwave.users.base import LossFn
from fedwave.users.config import UserConfig
from fedwave.users.datasource import UserDataSource
from fedwave.users.dpsgd import UserDPSGD


class RunPrivacy:
    """The DP side of one run: plan, ledger, UE-side clip and noise, accounting and the stop rule.

    Args:
        cfg: the run's config (``dp.level`` client or sample).
        ue_sizes: each UE's number of training samples (sample level: the per-UE schedules).

    Raises:
        ConfigError: ``dp.stop_at_epsilon`` is below the epsilon of a single round.
    """

    def __init__(self, cfg: Config, ue_sizes: Sequence[int]) -> None:
        self.cfg = cfg
        self.plan: PrivacyPlan = plan_privacy(cfg, list(ue_sizes))
        self.ledger = PrivacyLedger(self.plan)
        self.level = self.plan.level
        self.placement = cfg.dp.placement
        self.seed = cfg.seed
        self.clip = self.plan.clip
        self.z = self.plan.noise_multiplier
        self.stop_at = cfg.dp.stop_at_epsilon
        self.stopped_at_epsilon: int | None = None  # the last round run when the stop rule ended the run
        if self.stop_at is not None:
            first = self.ledger.next_round_epsilon()
            if first > self.stop_at:
                raise ConfigError(
                    f"dp.stop_at_epsilon={self.stop_at:g} is below the epsilon of one round ({first:.4g} at "
                    f"delta {self.plan.delta:g}): no round could run. Raise it, or add noise "
                    "(dp.noise_multiplier)"
                )

    def resolved_config(self) -> Config:
        """The run's config with z written into ``dp`` and ``dp.target_epsilon`` cleared (the z used)."""
        return self.cfg.model_copy(update={"dp": resolved_dp_config(self.cfg, self.plan)})

    # ------------------------------------------------------------------ client level
    def aggregation(self) -> DPAggregation | None:
        """The BS's DP-FedAvg settings (client level), or None at sample level."""
        if self.level != "client":
            return None
        denominator = client_sample_rate(self.cfg.fl) * self.cfg.fl.num_ues
        if self.placement == "distributed":
            return DPAggregation(None, 0.0, denominator)
        std = 0.0 if self.clip is None else self.z * self.clip
        return DPAggregation(self.clip, std, denominator)

    def privatize(
        self, update: Sequence[torch.Tensor], keys: tuple[Key, ...], planned: int
    ) -> tuple[list[torch.Tensor], str | None]:
        """A UE's honest client-level step before encoding: clip to S, add its share if distributed.

        ``keys`` are the UE's ``(round, ue)`` (plus the dispatch number if any); ``planned`` the number
        of UEs selected this round. Returns the tensors and what the clip did: ``"clipped"`` (the bound
        was hit), ``"zeroed"`` (the update held NaN or Inf: with a clip bound the UE sends zeros, a
        finite update of norm 0 <= S, so its noise share is still delivered; a diverged model would
        otherwise have every UE rejected) or None.
        """
        how: str | None = None
        tensors = list(update)
        if self.clip is not None and not all(bool(torch.isfinite(t).all()) for t in tensors):
            tensors, how = [torch.zeros_like(t) for t in tensors], "zeroed"
        out, factor = clip_update(tensors, self.clip)
        if factor < 1.0:
            how = "clipped"
        if self.placement == "distributed" and self.z > 0 and self.clip is not None:
            std = distributed_share_std(self.z, self.clip, planned)
            out = add_gaussian_noise(out, std, torch_generator(self.seed, "dp-noise", *keys))
        return out, how

    def dpsgd_user(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        user_cfg: UserConfig,
        setup: dict[str, Any],
        data: UserDataSource,
        working: nn.Module | None,
    ) -> UserDPSGD:
        """Sample level: UE ``user_cfg.user_idx`` training by DP-SGD on all its samples, on the plan's
        schedule (clip C, z, B = ``fl.batch_size``, E = ``fl.local_epochs``, ``fl.algorithm``)."""
        k = user_cfg.user_idx
        x, y = data.user_data(k, "all")
        fl = self.cfg.fl
        return UserDPSGD(
            model,
            loss_fn,
            x,
            y,
            user_cfg,
            setup,
            clip=self.clip,
            noise_multiplier=self.z,
            batch_size=fl.batch_size,
            local_epochs=fl.local_epochs,
            algorithm=fl.algorithm,
            user_idx=k,
            seed=self.seed,
            data_key=data.data_key,
            working_model=working,
            metadata=data.metadata,
        )

    def noise_generator(self, round: int) -> torch.Generator | None:
        """The stream of the BS's central noise in ``round`` (None when the BS adds none)."""
        if self.level != "client" or self.placement != "central":
            return None
        return torch_generator(self.seed, "dp-noise", round, "bs")

    # ------------------------------------------------------------------ end of round
    def end_round(self, record: RoundRecord, events: Sequence[UEEvent], counts: dict[str, int]) -> bool:
        """Account round ``record.round``, fill its epsilon and DP figures; False if the run must stop.

        Args:
            record: the round's record (``epsilon`` and ``extra["dp_*"]`` are written).
            events: the round's UE events (sample level: who put an update on the air).
            counts: client level, from the driver: ``planned`` (UEs selected), ``delivered`` (honest
                updates decoded and not rejected: the shares in the sum), ``clipped_ue``, ``zeroed_ue``
                (see :meth:`privatize`) and ``clipped_bs`` (decoded updates the BS clipped again).
        """
        if self.level == "client":
            delivered, planned = counts.get("delivered", 0), counts.get("planned", 0)
            for key in ("clipped_ue", "zeroed_ue", "clipped_bs"):
                record.extra[f"dp_{key}"] = float(counts.get(key, 0))
            if self.placement == "central":
                z = self.ledger.client_round()
            else:
                z = self.ledger.client_round(delivered=delivered, planned=planned)
                record.extra["dp_shares_planned"] = float(planned)
                record.extra["dp_shares_delivered"] = float(delivered)
            stepped = self.placement == "central" or delivered > 0
            record.extra["dp_z"] = z if stepped else math.nan
            record.extra["dp_noise_std_sum"] = (z * self.clip) if stepped and self.clip is not None else 0.0
        else:
            released = 0
            for ev in events:
                steps = self.ledger.steps_per_round.get(ev.ue, 0)  # UEs without data are not planned
                if ev.attempts > 0 and steps > 0:
                    self.ledger.ue_released(ev.ue, steps)
                    released += 1
            record.extra["dp_released"] = float(released)
            record.extra["dp_z"] = self.z if self.clip is not None else 0.0
            per_ue = list(self.ledger.ue_epsilons().values())
            record.extra["dp_epsilon_median"] = statistics.median(per_ue) if per_ue else 0.0
        record.epsilon = self.ledger.epsilon()
        if self.stop_at is None or self.ledger.next_round_epsilon() <= self.stop_at:
            return True
        if record.round + 1 < self.cfg.fl.rounds:
            self.stopped_at_epsilon = record.round
        return False

    # ------------------------------------------------------------------ state and summary
    def state_dict(self) -> dict[str, Any]:
        """The ledger's state (every accountant step, replayed bit for bit on resume)."""
        return {"ledger": self.ledger.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into a freshly planned run."""
        self.ledger = PrivacyLedger(self.plan)
        self.ledger.load_state_dict(state["ledger"])

    def summary(self) -> dict[str, Any]:
        """The run's privacy for ``summary.json``: settings, final epsilon, per-UE distribution, stop."""
        plan = self.plan
        out: dict[str, Any] = {
            "level": plan.level,
            "accountant": plan.accountant,
            "delta": plan.delta,
            "epsilon": self.ledger.epsilon(),
            "noise_multiplier": plan.noise_multiplier,
            "clip": plan.clip,
            "target_epsilon": plan.target_epsilon,
            "stop_at_epsilon": self.stop_at,
            "stopped_at_epsilon": self.stopped_at_epsilon is not None,
        }
        if self.stopped_at_epsilon is not None:
            done = self.stopped_at_epsilon + 1
            out["stopped_after_rounds"] = done
            out["stop_reason"] = (
                f"stopped at epsilon after {done} of {self.cfg.fl.rounds} rounds: one more round would take "
                f"epsilon past dp.stop_at_epsilon={self.stop_at:g}"
            )
        if plan.level == "client":
            out["placement"] = self.placement
            out["sample_rate"] = client_sample_rate(self.cfg.fl)
        else:
            eps = self.ledger.ue_epsilons()
            values = sorted(eps.values())
            qt = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
            out["ue_epsilons"] = {
                "max": values[-1],
                "median": statistics.median(values),
                "min": values[0],
                "quartiles": qt,
                "per_ue": {str(k): v for k, v in sorted(eps.items())},
            }
        return out
