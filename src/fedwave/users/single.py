"""``UserSingleStep``: shares one gradient over its samples (FedSGD; the classic leakage target)."""

from __future__ import annotations

from typing import Any

import torch
from torch.func import functional_call, grad, vmap

from fedwave.users.base import Payload, SharedData, TrueData, User
from fedwave.users.privacy import global_norm


class UserSingleStep(User):
    """One gradient of the mean loss over the user's ``num_data_points`` samples.

    With ``per_example_clipping > 0`` the per-example gradients are computed (vectorised with
    ``torch.func``; a loop over examples for models whose batch statistics make per-example gradients
    depend on the batch), each clipped to that global L2 norm, then averaged. Noise is added once.
    """

    kind = "single step"

    def _per_example_gradients(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        model = self.model
        names = [n for n, _ in model.named_parameters()]
        params = {n: p.detach() for n, p in model.named_parameters()}
        buffers = {n: b for n, b in model.named_buffers()}
        uses_batch_stats = model.training and any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()
        )
        if not uses_batch_stats:

            def loss_one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
                out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
                return self.loss_fn(out, yi.unsqueeze(0))

            per = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
            return [per[n] for n in names]
        rows: list[list[torch.Tensor]] = []
        plist = list(model.parameters())
        for i in range(x.shape[0]):
            loss = self.loss_fn(model(x[i : i + 1]), y[i : i + 1])
            rows.append([g.detach() for g in torch.autograd.grad(loss, plist)])
        return [torch.stack([r[j] for r in rows]) for j in range(len(plist))]

    def _clipped_mean_gradient(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        per = self._per_example_gradients(x, y)
        n = x.shape[0]
        flat_norms = torch.stack([g.reshape(n, -1).pow(2).sum(1) for g in per]).sum(0).sqrt()
        factors = (self.clip_value / (flat_norms + 1e-12)).clamp(max=1.0)
        return [(g * factors.view(-1, *([1] * (g.dim() - 1)))).mean(0) for g in per]

    def compute_local_updates(
        self,
        server_payload: Payload,
        custom_data: dict[str, torch.Tensor] | None = None,
        *,
        rng: torch.Generator | None = None,
    ) -> tuple[SharedData, TrueData]:
        self.counted_queries += 1
        gen = rng if rng is not None else self._generator("single")
        x, y = self._load_data(custom_data)
        self._synchronize(server_payload)
        x_in = self._noisy_inputs(x, gen)
        if self.clip_value > 0:
            grads = self._clipped_mean_gradient(x_in, y)
        else:
            loss = self.loss_fn(self.model(x_in), y)
            grads = [g.detach() for g in torch.autograd.grad(loss, list(self.model.parameters()))]
        self._add_gradient_noise(grads, gen)
        shared: SharedData = {
            "gradients": grads,
            "buffers": self._shared_buffers(server_payload),
            "metadata": self._metadata(y, int(y.shape[0]), None),
        }
        return shared, self._true_data(x, y)

    def gradient_norm(self, shared: dict[str, Any]) -> float:
        """Global L2 norm of a shared update (convenience for analysis)."""
        return float(global_norm(shared["gradients"]))
