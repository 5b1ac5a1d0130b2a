"""``UserMultiStep``: several local SGD steps, shares the parameter difference (FedAvg)."""

from __future__ import annotations

import torch

from fedwave.engine.optim import SGD
from fedwave.users.base import Payload, SharedData, TrueData, User
from fedwave.users.privacy import clip_
from fedwave.users.randomness import seeded_global_rng
from fedwave.users.schedule import cycling_batches, epoch_batches
from fedwave.users.tensors import snapshot


class UserMultiStep(User):
    """Local training with plain SGD (``fedwave.engine.optim.SGD``, lr ``local_learning_rate``); shares
    ``p_local - p_server``.

    Steps: ``num_local_updates`` steps of ``num_data_per_local_update_step`` samples cycling through the
    data (the original framework's slicing, see :mod:`fedwave.users.schedule`), or, when ``local_epochs``
    (E) is set, E epochs of ceil(n/B) steps of B samples (shuffled each epoch if ``shuffle``). Each step:
    forward (inputs noised if ``input_noise``), backward, clip the batch gradient to
    ``per_example_clipping`` (global L2), add ``gradient_noise``, ``optimizer.step()``.

    Shared ``local_hyperparams``: ``{lr, steps, data_per_step, labels}`` with ``labels[t]`` the **sorted**
    labels of step t. Random layers (Dropout) draw from the global RNG seeded from the query's generator
    (one draw, after the epoch shuffles), so a query is reproducible and leaves the global RNG untouched.
    """

    kind = "multi step"

    def batches(self, num_data: int, generator: torch.Generator) -> list[torch.Tensor]:
        """The index batch of every local step."""
        cfg = self.cfg
        if cfg.local_epochs is not None:
            return epoch_batches(
                num_data,
                cfg.num_data_per_local_update_step,
                cfg.local_epochs,
                shuffle=cfg.shuffle,
                generator=generator,
            )
        return cycling_batches(num_data, cfg.num_data_per_local_update_step, cfg.num_local_updates)

    def compute_local_updates(
        self,
        server_payload: Payload,
        custom_data: dict[str, torch.Tensor] | None = None,
        *,
        rng: torch.Generator | None = None,
        return_true_user_data: bool = True,
    ) -> tuple[SharedData, TrueData]:
        gen, x, y = self._begin_query(server_payload, custom_data, rng, "multi")
        params = list(self.model.parameters())
        start = snapshot(params)
        optimizer = SGD(params, lr=self.cfg.local_learning_rate)
        batches = self.batches(int(y.shape[0]), gen)
        with seeded_global_rng(gen, self.setup.get("device")):
            for idx in batches:
                optimizer.zero_grad(set_to_none=False)
                loss = self.loss_fn(self.model(self._noisy_inputs(x[idx], gen)), y[idx])
                loss.backward()
                grads = [p.grad for p in params if p.grad is not None]
                if self.clip_value > 0:
                    clip_(grads, self.clip_value)
                self._add_gradient_noise(grads, gen)
                optimizer.step()
        with torch.no_grad():
            diffs = [p.detach() - s for p, s in zip(params, start)]
        hyper = None
        if self.cfg.provide_local_hyperparams is not False:
            hyper = {
                "lr": self.cfg.local_learning_rate,
                "steps": len(batches),
                "data_per_step": self.cfg.num_data_per_local_update_step,
                "labels": [torch.sort(y[idx].detach().cpu())[0] for idx in batches],
            }
        shared: SharedData = {
            "gradients": diffs,
            "buffers": self._shared_buffers(server_payload),
            "metadata": self._metadata(y, int(y.shape[0]), hyper),
        }
        return shared, self._true_data(x, y, return_true_user_data)

    def _threat_model_lines(self) -> list[str]:
        cfg = self.cfg
        if cfg.local_epochs is not None:
            local = (
                f"    local FL setup: E={cfg.local_epochs} epochs, B={cfg.num_data_per_local_update_step}, "
                f"shuffle={cfg.shuffle}, lr={cfg.local_learning_rate}"
            )
        else:
            local = (
                f"    local FL setup: {cfg.num_local_updates} steps of {cfg.num_data_per_local_update_step} "
                f"samples, lr={cfg.local_learning_rate}"
            )
        shared_hyper = "yes" if cfg.provide_local_hyperparams is not False else "no"
        return [*super()._threat_model_lines(), local, f"    shares local hyperparameters: {shared_hyper}"]
