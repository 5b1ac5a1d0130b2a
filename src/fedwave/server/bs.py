"""The base station: holds the global model, aggregates received updates, evaluates, broadcasts.

The BS never sees a UE's data. Each received update is a list of tensors in ``model.parameters()``
order plus optional buffers and a sample count. FedSGD updates are gradients; FedAvg updates are
parameter differences ``p_local - p_server`` (see ``fedwave.users.base``). The BS turns their weighted
mean into a pseudo-gradient and lets the server optimizer take one step.

With a robust ``server.aggregator`` (:mod:`fedwave.server.aggregators`: median, trimmed mean, Krum,
geometric median, centered clipping) the rule replaces the weighted mean: every UE counts alike (a
claimed sample count could be inflated), each update scaled first by its own factor (async staleness).
``centered_clip`` starts from the previous robust aggregate. A round with fewer updates than the rule
needs (packet losses, a deadline) leaves the model unchanged; its updates are ``unaggregated``.

Under client-level DP (``dp``: a :class:`~fedwave.server.dp.DPAggregation`) the mean is DP-FedAvg's
instead (:mod:`fedwave.server.dp`): each finite update clipped to S, summed with weight 1, noised, divided
by q N; buffers are not aggregated (models with buffers are refused with DP). Norm bounding and the
roll-back of a diverging step work on both paths: ``server.norm_bound`` applies after the DP clip (it can
only lower norms further), and a rolled-back DP step still cost privacy (its noised result was computed
and the decision to roll back depends on it).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from fedwave.server.aggregate import aggregate_buffers, is_finite, update_norm, weighted_mean
from fedwave.server.aggregators import TooFewUpdates, get_aggregator
from fedwave.server.dp import DPAggregation, dp_clip, dp_mean
from fedwave.server.evaluate import Evaluation, evaluate
from fedwave.server.optimizers import apply_pseudo_gradient, make_server_optimizer
from fedwave.server.payload import build_payload
from fedwave.users.tensors import load_buffers, persistent_buffers, snapshot


@dataclass
class ReceivedUpdate:
    """One UE's decoded update as the BS received it.

    Attributes:
        ue: the UE's id.
        tensors: gradients (FedSGD) or parameter differences (FedAvg), in parameter order.
        num_samples: samples the UE used (its shared ``num_data_points``).
        buffers: the UE's persistent buffers after local training, or None.
        weight: an extra factor on the UE's aggregation weight (async staleness weight; 1 otherwise).
    """

    ue: int
    tensors: list[torch.Tensor]
    num_samples: int
    buffers: list[torch.Tensor] | None = None
    weight: float = 1.0


@dataclass
class AggregationOutcome:
    """What an aggregation step did.

    Attributes:
        aggregated: UEs whose update entered the step (and stayed, unless ``rolled_back``).
        rejected: UEs whose update held NaN or Inf (never aggregated).
        clipped: UEs whose update was scaled down to ``norm_bound``.
        rolled_back: the step made the model non-finite or exploded (see ``divergence_factor``), so the
            BS restored the model, its buffers and optimizer state from before it.
        step_norm: L2 norm of the change the step made to the parameters (before any roll-back).
        dp_clipped: DP path: UEs whose decoded update the BS clipped to S (a lossy codec raised its norm).
        dp_noise_std: DP path: std of the noise the BS added to each coordinate of the sum (0: none).
        unaggregated: UEs whose finite update the robust rule could not use: the round had fewer
            updates than it needs (``too_few`` says why); the model stayed unchanged.
        too_few: the robust rule's message when it refused the round, else "".
    """

    aggregated: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    clipped: list[int] = field(default_factory=list)
    rolled_back: bool = False
    step_norm: float = 0.0
    dp_clipped: list[int] = field(default_factory=list)
    dp_noise_std: float = 0.0
    unaggregated: list[int] = field(default_factory=list)
    too_few: str = ""


class BaseStation:
    """The BS: global model, server optimizer, aggregation and evaluation.

    Args:
        model: the initial global model (the BS keeps its own copy).
        server_cfg: a ``ServerConfig`` (optimizer, lr, momentum, betas, eps).
        algorithm: ``"fedavg"`` (updates are parameter differences) or ``"fedsgd"`` (gradients).
        weighting: ``"samples"`` (weights proportional to sample counts) or ``"uniform"``.
        server_cfg may also set ``norm_bound`` (scale each update to at most this L2 norm before
        aggregating), ``divergence_factor`` (roll back a step larger than this times max(1, ||w||)) and
        ``aggregator`` (a spec of :func:`~fedwave.server.aggregators.get_aggregator`; default ``mean``).
        x_test, y_test: the held-out test split.
        metadata: dataset metadata carried in every payload.
        dp: client-level DP aggregation (clip S, noise std, denominator q N), or None.
    """

    def __init__(
        self,
        model: nn.Module,
        server_cfg: Any,
        *,
        algorithm: Literal["fedavg", "fedsgd"],
        weighting: Literal["samples", "uniform"],
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        metadata: dict[str, Any] | None = None,
        dp: DPAggregation | None = None,
    ) -> None:
        self.dp = dp
        self.norm_bound: float | None = getattr(server_cfg, "norm_bound", None)
        self.divergence_factor: float | None = getattr(server_cfg, "divergence_factor", None)
        self.aggregator = get_aggregator(getattr(server_cfg, "aggregator", "mean"))
        self.center: list[torch.Tensor] | None = None  # the last robust aggregate (centered_clip)
        self.model = copy.deepcopy(model)
        self.params = list(self.model.parameters())
        self.algorithm = algorithm
        self.weighting = weighting
        self.optimizer = make_server_optimizer(server_cfg.optimizer, self.params, server_cfg)
        self.x_test, self.y_test = x_test, y_test
        self.metadata = dict(metadata or {})
        self.version = 0
        self.has_buffers = bool(persistent_buffers(self.model))

    def payload(self) -> dict[str, Any]:
        """The server payload of the current global model (buffers in train mode when the model has any)."""
        return build_payload(
            self.model, with_buffers=self.has_buffers, buffers_mode="train", metadata=self.metadata
        )

    def aggregate(
        self, updates: list[ReceivedUpdate], noise: torch.Generator | None = None
    ) -> AggregationOutcome:
        """Reject non-finite updates, bound norms, average the rest, take one server optimizer step.

        The average is ``sum_k (n_k / sum_j n_j) s_k u_k`` with ``n_k`` the sample (or uniform) weight and
        ``s_k`` the update's own factor (the async staleness weight, 1 otherwise): staleness damps the
        step, it is not normalised away (FedBuff). Buffers: the same weights, normalised. If the step
        leaves a non-finite model, or moves the parameters by more than ``divergence_factor`` times
        ``max(1, ||w||)``, it is rolled back. With no acceptable update the model is unchanged; the
        version advances in every case. With ``dp`` set the mean is DP-FedAvg's (see the module
        docstring), its noise drawn from ``noise``; a round with no update still takes a noise-only step.
        """
        outcome = AggregationOutcome()
        self.version += 1
        plain = self.dp is None and self.norm_bound is None and not self.aggregator.robust
        if plain and self._mean_of_finite(updates, outcome):
            return outcome
        good: list[ReceivedUpdate] = []
        for u in updates:
            finite = is_finite(u.tensors) and (u.buffers is None or is_finite(u.buffers))
            (good if finite else []).append(u)
            (outcome.aggregated if finite else outcome.rejected).append(u.ue)
        if self.dp is not None:
            return self._aggregate_dp(good, outcome, noise)
        if not good:
            return outcome
        if self.norm_bound is not None:
            good = [self._bounded(u, outcome) for u in good]
        if self.aggregator.robust:
            return self._aggregate_robust(good, outcome)
        mean = self._mean(good)
        if mean is not None:
            self._step(mean, good, outcome)
        return outcome

    def _mean(self, good: list[ReceivedUpdate]) -> list[torch.Tensor] | None:
        """The weighted mean of ``good`` (see :meth:`aggregate`); None when the weights sum to 0."""
        base = [float(u.num_samples) if self.weighting == "samples" else 1.0 for u in good]
        weights = [b * u.weight for b, u in zip(base, good)]
        if sum(weights) <= 0:
            return None
        damping = sum(weights) / sum(base)
        return [m * damping for m in weighted_mean([u.tensors for u in good], weights)]

    def _mean_of_finite(self, updates: list[ReceivedUpdate], outcome: AggregationOutcome) -> bool:
        """The plain mean's step when every update is finite, checked by the mean itself; False (nothing
        done) when some update is not, the weights sum to 0 or the updates' shapes differ: :meth:`aggregate`
        then checks them one by one.

        The float64 mean of finite float32 updates is finite (no sum of them overflows), and a NaN or an
        infinity in an update of non-zero weight leaves a NaN or an infinity in the mean. So a finite mean
        proves its updates finite without a pass over each of them; updates of weight 0, which the mean
        does not read, and buffers are checked on their own. The mean is the one the updates would get
        one by one (same updates, order and weights), so the result is the same to the bit.
        """
        if not updates or any(
            (u.buffers is not None and not is_finite(u.buffers))
            or ((u.weight == 0 or u.num_samples == 0) and not is_finite(u.tensors))
            for u in updates
        ):
            return False
        try:
            mean = self._mean(updates)
        except ValueError:  # updates of other shapes: refused, or rejected first if not finite, one by one
            return False
        if mean is None or not all(
            math.isfinite(float(m.sum())) or bool(torch.isfinite(m).all()) for m in mean
        ):
            return False
        outcome.aggregated.extend(u.ue for u in updates)
        self._step(mean, updates, outcome)
        return True

    def step_along(self, mean: list[torch.Tensor], ues: list[int]) -> AggregationOutcome:
        """One server step along a mean update formed elsewhere (over the air: the BS never sees the
        single updates, so it can neither reject nor bound them); a non-finite or exploding step is
        rolled back. The version advances in every case; with no UE the model is unchanged."""
        outcome = AggregationOutcome(aggregated=list(ues))
        self.version += 1
        if ues:
            self._step(mean, [], outcome)
        return outcome

    def _aggregate_robust(
        self, good: list[ReceivedUpdate], outcome: AggregationOutcome
    ) -> AggregationOutcome:
        """The robust rule over the updates, each scaled by its own factor; too few -> no step."""
        scaled = [u.tensors if u.weight == 1.0 else [t * u.weight for t in u.tensors] for u in good]
        try:
            robust = self.aggregator.aggregate(scaled, center=self.center)
        except TooFewUpdates as exc:
            outcome.unaggregated, outcome.aggregated = outcome.aggregated, []
            outcome.too_few = str(exc)
            return outcome
        self._step(robust, good, outcome)
        if not outcome.rolled_back:
            self.center = [t.clone() for t in robust]
        return outcome

    def _aggregate_dp(
        self, good: list[ReceivedUpdate], outcome: AggregationOutcome, noise: torch.Generator | None
    ) -> AggregationOutcome:
        assert self.dp is not None
        bounded = []
        for u in good:
            tensors, clipped = dp_clip(u.tensors, self.dp)
            if clipped:
                outcome.dp_clipped.append(u.ue)
            v = ReceivedUpdate(u.ue, tensors, u.num_samples, None, 1.0)
            bounded.append(self._bounded(v, outcome) if self.norm_bound is not None else v)
        outcome.dp_noise_std = self.dp.noise_std
        mean = dp_mean([u.tensors for u in bounded], self.dp, [p.shape for p in self.params], noise)
        if mean is not None:
            self._step(mean, [], outcome)
        return outcome

    def _step(
        self, mean: list[torch.Tensor], good: list[ReceivedUpdate], outcome: AggregationOutcome
    ) -> None:
        """One server optimizer step along ``mean``; buffers of ``good``; roll back if it diverged."""
        before = self._snapshot()
        pseudo = mean if self.algorithm == "fedsgd" else [-m for m in mean]
        apply_pseudo_gradient(self.optimizer, self.params, pseudo)
        with_buffers = [u for u in good if u.buffers is not None]
        if self.has_buffers and with_buffers:
            bw = [
                float(u.num_samples) * u.weight if self.weighting == "samples" else u.weight
                for u in with_buffers
            ]
            load_buffers(self.model, aggregate_buffers([u.buffers for u in with_buffers if u.buffers], bw))
        outcome.step_norm = float(update_norm([p.detach() - b for p, b in zip(self.params, before[0])]))
        if self._diverged(outcome.step_norm, before[0]):
            self._restore(before)
            outcome.rolled_back = True

    def _bounded(self, u: ReceivedUpdate, outcome: AggregationOutcome) -> ReceivedUpdate:
        assert self.norm_bound is not None
        norm = float(update_norm(u.tensors))
        if norm <= self.norm_bound:
            return u
        outcome.clipped.append(u.ue)
        factor = self.norm_bound / norm
        return ReceivedUpdate(u.ue, [t * factor for t in u.tensors], u.num_samples, u.buffers, u.weight)

    def _diverged(self, step_norm: float, before: list[torch.Tensor]) -> bool:
        if not (is_finite(self.params) and is_finite(persistent_buffers(self.model))):
            return True
        if not math.isfinite(step_norm):
            return True
        if self.divergence_factor is None:
            return False
        return step_norm > self.divergence_factor * max(1.0, float(update_norm(before)))

    def _snapshot(self) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, Any]]:
        return (
            snapshot(self.params),
            snapshot(persistent_buffers(self.model)),
            copy.deepcopy(self.optimizer.state_dict()),
        )

    def _restore(self, state: tuple[list[torch.Tensor], list[torch.Tensor], dict[str, Any]]) -> None:
        params, buffers, opt = state
        with torch.no_grad():
            for p, b in zip(self.params, params):
                p.copy_(b)
        if buffers:
            load_buffers(self.model, buffers)
        self.optimizer.load_state_dict(opt)

    def evaluate(self) -> Evaluation:
        """Test accuracy and loss of the global model."""
        return evaluate(self.model, self.x_test, self.y_test)

    # --------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer state and version (for checkpoints)."""
        return {
            "model": {k: v.clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "version": self.version,
            "center": None if self.center is None else [t.clone() for t in self.center],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.version = int(state["version"])
        center = state.get("center")
        self.center = None if center is None else [t.clone() for t in center]

    def parameters_snapshot(self) -> list[torch.Tensor]:
        """Detached copies of the global parameters."""
        return snapshot(self.params)
