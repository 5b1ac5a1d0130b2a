"""Plain SGD with the exact arithmetic of ``torch.optim.SGD`` (single-tensor path), without its import cost.

Every ``torch.optim.Optimizer`` method is wrapped to disable TorchDynamo, and the first call imports
``torch._dynamo`` — seconds of start-up for a run that never compiles anything. ``SGD`` below performs
the same operations in the same order as ``torch.optim.SGD(foreach=False)`` (the path torch takes on
CPU), so results are bit-identical (checked by the tests), and its ``state_dict`` has torch's layout
(``{"state": {index: {"momentum_buffer": tensor}}, "param_groups": [...]}``), so checkpoints written
with either load into the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class SGD:
    """SGD with optional momentum and Nesterov momentum: ``p <- p - lr * d`` (lr per unit gradient)."""

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        self.params = list(params)
        if lr < 0 or momentum < 0:
            raise ValueError(f"lr and momentum must be >= 0, got lr={lr}, momentum={momentum}")
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires a momentum > 0")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        """One step along each parameter's ``.grad`` (parameters without a gradient are skipped)."""
        for i, p in enumerate(self.params):
            grad = p.grad
            if grad is None:
                continue
            if self.momentum != 0:
                buf = self.buffers[i]
                if buf is None:
                    buf = grad.detach().clone()
                    self.buffers[i] = buf
                else:
                    buf.mul_(self.momentum).add_(grad, alpha=1.0)
                grad = grad.add(buf, alpha=self.momentum) if self.nesterov else buf
            p.add_(grad, alpha=-self.lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (``set_to_none``) or zero every parameter's gradient."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.requires_grad_(False)
                p.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        """Momentum buffers and hyper-parameters in ``torch.optim.SGD``'s layout."""
        state = {i: {"momentum_buffer": b} for i, b in enumerate(self.buffers) if b is not None}
        group = {
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": 0,
            "weight_decay": 0,
            "nesterov": self.nesterov,
            "maximize": False,
            "foreach": None,
            "differentiable": False,
            "fused": None,
            "params": list(range(len(self.params))),
        }
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the momentum buffers saved by :meth:`state_dict` (or by ``torch.optim.SGD``)."""
        groups = state_dict["param_groups"]
        ids = [i for g in groups for i in g["params"]]
        if len(ids) != len(self.params):
            raise ValueError(
                f"optimizer state has {len(ids)} parameters; this optimizer has {len(self.params)}"
            )
        pos = {pid: k for k, pid in enumerate(ids)}
        self.buffers = [None] * len(self.params)
        for pid, entry in state_dict["state"].items():
            buf = entry.get("momentum_buffer")
            if buf is not None:
                k = pos[pid]
                self.buffers[k] = buf.detach().clone().to(self.params[k])
