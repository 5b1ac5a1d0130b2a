"""Server optimizers, by name: they apply the aggregated pseudo-gradient to the global model.

The BS turns the users' updates into a pseudo-gradient ``g`` (FedSGD: the mean gradient; FedAvg: minus
the mean parameter difference) and takes one optimizer step ``w <- w - lr * step(g)``:

- ``sgd`` with lr 1 and no momentum is plain FedAvg (``w + mean delta``); with momentum it is FedAvgM
  (Hsu et al. 2019).
- ``adam`` is FedAdam (Reddi et al. 2021), with ``eps`` playing the adaptivity ``tau``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from fedwave.engine.optim import SGD

# torch.optim.Adam or fedwave's SGD (same arithmetic as torch.optim.SGD without importing torch._dynamo)
ServerOptimizer = torch.optim.Optimizer | SGD
OptimizerFactory = Callable[[list[nn.Parameter], Any], ServerOptimizer]


def _sgd(params: list[nn.Parameter], cfg: Any) -> ServerOptimizer:
    return SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def _adam(params: list[nn.Parameter], cfg: Any) -> ServerOptimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


SERVER_OPTIMIZERS: dict[str, OptimizerFactory] = {"sgd": _sgd, "adam": _adam}


def make_server_optimizer(name: str, params: list[nn.Parameter], cfg: Any) -> ServerOptimizer:
    """The server optimizer ``name`` over the global model's parameters (see the module docstring)."""
    return SERVER_OPTIMIZERS[name](params, cfg)


@torch.no_grad()
def apply_pseudo_gradient(
    optimizer: ServerOptimizer, params: Sequence[nn.Parameter], pseudo_gradient: Sequence[torch.Tensor]
) -> None:
    """Set ``p.grad = g`` for each parameter and take one optimizer step."""
    for p, g in zip(params, pseudo_gradient):
        p.grad = g.to(dtype=p.dtype, device=p.device).clone()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
