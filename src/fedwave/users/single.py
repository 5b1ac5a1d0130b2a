"""``UserSingleStep``: shares one gradient over its samples (FedSGD; the classic leakage target)."""

from __future__ import annotations

from typing import Any

import torch

from fedwave.users.base import Payload, SharedData, TrueData, User
from fedwave.users.batchnorm import exact_batch_statistics, tracks_running_stats
from fedwave.users.perexample import clipped_mean, per_example_gradients
from fedwave.users.privacy import global_norm
from fedwave.users.randomness import seeded_global_rng


class UserSingleStep(User):
    """One gradient of the mean loss over the user's ``num_data_points`` samples.

    With ``per_example_clipping > 0`` the per-example gradients are computed (see
    :mod:`fedwave.users.perexample`), each clipped to that global L2 norm, then averaged; the running
    statistics (BatchNorm in ``train()`` mode) are then updated once, by one forward pass of the whole
    batch, exactly as without clipping. Noise is added once.

    Running statistics: with ``exact_batch_statistics`` (default: when the server sent no buffers, as the
    original framework does) the step runs with the running statistics reset and BatchNorm momentum None,
    so the statistics the user ends with (and shares if ``provide_buffers``) are exactly the batch's mean
    and unbiased variance, with ``num_batches_tracked == 1``.

    Random layers (Dropout) draw from the global RNG seeded from the query's generator (one draw, taken
    before the input noise), so a query is reproducible and leaves the process's global RNG untouched.
    """

    kind = "single step"

    def _exact_statistics(self, server_payload: Payload) -> bool:
        if not self.model.training:
            return False
        flag = self.cfg.exact_batch_statistics
        return server_payload.get("buffers") is None if flag is None else flag

    def compute_local_updates(
        self,
        server_payload: Payload,
        custom_data: dict[str, torch.Tensor] | None = None,
        *,
        rng: torch.Generator | None = None,
        return_true_user_data: bool = True,
    ) -> tuple[SharedData, TrueData]:
        gen, x, y = self._begin_query(server_payload, custom_data, rng, "single")
        exact = self._exact_statistics(server_payload)
        with seeded_global_rng(gen, self.setup.get("device")), exact_batch_statistics(self.model, exact):
            x_in = self._noisy_inputs(x, gen)
            if self.clip_value > 0:
                grads = clipped_mean(
                    per_example_gradients(self.model, self.loss_fn, x_in, y), self.clip_value
                )
                if self.model.training and tracks_running_stats(self.model):
                    with torch.no_grad():
                        self.model(x_in)  # the batch's statistics, once
            else:
                loss = self.loss_fn(self.model(x_in), y)
                grads = [g.detach() for g in torch.autograd.grad(loss, list(self.model.parameters()))]
        self._add_gradient_noise(grads, gen)
        shared: SharedData = {
            "gradients": grads,
            "buffers": self._shared_buffers(server_payload),
            "metadata": self._metadata(y, int(y.shape[0]), None),
        }
        return shared, self._true_data(x, y, return_true_user_data)

    def _threat_model_lines(self) -> list[str]:
        flag = self.cfg.exact_batch_statistics
        when = {None: "when the server sends no buffers", True: "always", False: "never"}[flag]
        return [
            *super()._threat_model_lines(),
            f"    exact batch statistics (BatchNorm momentum None): {when}",
        ]

    def gradient_norm(self, shared: dict[str, Any]) -> float:
        """Global L2 norm of a shared update (convenience for analysis)."""
        return float(global_norm(shared["gradients"]))
