"""``UserDPSGD``: local training by DP-SGD (sample-level DP, ``dp.level: sample``).

Each local step on a UE holding n samples (Abadi et al. 2016, as :mod:`fedwave.privacy.dp.dpsgd` does
it): a Poisson batch (each sample joins with probability q = min(1, B / n)), per-example gradients,
each clipped to L2 norm C, summed, N(0, (z C)^2) added per coordinate, divided by the expected batch
size q n; then one SGD step at ``local_learning_rate``. FedAvg takes E ceil(n / B) such steps and shares
``p_local - p_server``; FedSGD (``algorithm="fedsgd"``) takes one step with q = 1 and shares that noised
gradient (no local step). These are exactly the schedules the accountant uses
(:func:`fedwave.privacy.dp.plan.local_schedule`).

Every draw (batch membership, dropout masks, noise) comes from the query's generator, so an update is
a pure function of (payload, data, generator). The users.md local privacy measures do not apply here
(the config refuses them with sample level). Models with BatchNorm are refused (no per-example
gradient); the UE therefore shares no buffers.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from fedwave.engine.optim import SGD
from fedwave.privacy.dp.dpsgd import check_dpsgd_model, dp_sgd_gradient, poisson_batch
from fedwave.privacy.dp.plan import local_schedule
from fedwave.users.base import LossFn, Payload, SharedData, TrueData, User
from fedwave.users.config import UserConfig
from fedwave.users.tensors import snapshot


class UserDPSGD(User):
    """A UE that trains by DP-SGD and shares its parameter difference (FedAvg) or one noised gradient.

    Args:
        model, loss_fn, inputs, labels, cfg, setup: as for :class:`~fedwave.users.base.User`
            (``cfg.local_learning_rate`` is the local SGD step size).
        clip: C, the L2 bound of each example's gradient (None: no clipping, then z must be 0).
        noise_multiplier: z; each step's gradient sum gets N(0, (z C)^2) per coordinate.
        batch_size: B, the expected batch size of a step (q = min(1, B / n)).
        local_epochs: E (FedAvg: E ceil(n / B) steps per round).
        algorithm: ``"fedavg"`` or ``"fedsgd"``.
        **kwargs: passed to :class:`~fedwave.users.base.User` (``user_idx``, ``seed``, ``working_model``...).
    """

    kind = "dp-sgd"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        cfg: UserConfig,
        setup: dict[str, Any],
        *,
        clip: float | None,
        noise_multiplier: float,
        batch_size: int,
        local_epochs: int,
        algorithm: Literal["fedavg", "fedsgd"],
        **kwargs: Any,
    ) -> None:
        super().__init__(model, loss_fn, inputs, labels, cfg, setup, **kwargs)
        check_dpsgd_model(self.model)
        if noise_multiplier > 0 and clip is None:
            raise ValueError("DP-SGD noise has std z * clip: a clip bound is needed when z > 0")
        self.dp_clip = clip
        self.noise_multiplier = float(noise_multiplier)
        self.batch_size = int(batch_size)
        self.local_epochs = int(local_epochs)
        self.algorithm = algorithm

    def steps_per_round(self) -> int:
        """DP-SGD steps of one query on all the UE's samples (what the accountant charges per round)."""
        return self._schedule(self.num_data_points)[1]

    def _schedule(self, n: int) -> tuple[float, int]:
        if n < 1:
            return 0.0, 0  # a UE without data takes no step and releases nothing
        s = local_schedule(n, self.batch_size, self.local_epochs, self.algorithm)
        return s.sample_rate, s.steps_per_round

    def compute_local_updates(
        self,
        server_payload: Payload,
        custom_data: dict[str, torch.Tensor] | None = None,
        *,
        rng: torch.Generator | None = None,
        return_true_user_data: bool = True,
    ) -> tuple[SharedData, TrueData]:
        gen, x, y = self._begin_query(server_payload, custom_data, rng, "dpsgd")
        n = int(y.shape[0])
        q, steps = self._schedule(n)
        params = list(self.model.parameters())
        trainable = [p for p in params if p.requires_grad]
        start = snapshot(params)
        optimizer = SGD(trainable, lr=self.cfg.local_learning_rate)
        grads: list[torch.Tensor] = []
        for _ in range(steps):
            idx = poisson_batch(n, q, gen).to(x.device)
            grads = dp_sgd_gradient(
                self.model,
                self.loss_fn,
                x[idx],
                y[idx],
                clip=self.dp_clip,
                noise_multiplier=self.noise_multiplier,
                expected_batch_size=q * n,
                generator=gen,
            )
            if self.algorithm == "fedsgd":
                break  # one noised gradient is the update
            for p, g in zip(trainable, grads):
                p.grad = g.to(dtype=p.dtype)
            optimizer.step()
        with torch.no_grad():
            if self.algorithm == "fedsgd" and grads:
                by_param = iter(grads)
                shared_tensors = [next(by_param) if p.requires_grad else torch.zeros_like(p) for p in params]
            else:
                shared_tensors = [p.detach() - s for p, s in zip(params, start)]
        shared: SharedData = {
            "gradients": shared_tensors,
            "buffers": None,
            "metadata": self._metadata(y, n, None),
        }
        return shared, self._true_data(x, y, return_true_user_data)

    def _threat_model_lines(self) -> list[str]:
        q, steps = self._schedule(self.num_data_points)
        return [
            *super()._threat_model_lines(),
            f"    DP-SGD: clip C={self.dp_clip}, z={self.noise_multiplier}, q={q:.4g}, "
            f"{steps} steps per query ({self.algorithm})",
        ]
