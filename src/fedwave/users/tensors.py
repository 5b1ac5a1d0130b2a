"""Parameters and buffers of a model, in the order the payload carries them.

- Parameters: ``model.parameters()`` order; tied (shared) parameters appear once, so copying the payload
  back into the model keeps the tie intact.
- Buffers that travel: the *persistent* buffers (those in ``state_dict``), in ``model.named_buffers()``
  order. Non-persistent buffers are recomputable by definition and stay on each side.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def persistent_buffers(model: nn.Module) -> list[torch.Tensor]:
    """The buffers that belong to ``state_dict`` (e.g. BatchNorm running_mean/var, num_batches_tracked)."""
    out: list[torch.Tensor] = []
    for module in model.modules():
        skip = module._non_persistent_buffers_set
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and name not in skip:
                out.append(buf)
    return out


def _check(kind: str, target: Sequence[torch.Tensor], source: Sequence[torch.Tensor]) -> None:
    if len(target) != len(source):
        raise ValueError(f"server payload has {len(source)} {kind}, the model has {len(target)}")
    for i, (t, s) in enumerate(zip(target, source)):
        if t.shape != s.shape:
            raise ValueError(
                f"server payload {kind}[{i}] has shape {tuple(s.shape)}, model expects {tuple(t.shape)}"
            )


@torch.no_grad()
def load_parameters(model: nn.Module, parameters: Sequence[torch.Tensor]) -> None:
    """Copy ``parameters`` into ``model.parameters()`` in order (shapes checked)."""
    target = list(model.parameters())
    _check("parameters", target, parameters)
    for t, s in zip(target, parameters):
        t.copy_(s)


@torch.no_grad()
def load_buffers(model: nn.Module, buffers: Sequence[torch.Tensor]) -> None:
    """Copy ``buffers`` into the model's persistent buffers in order (shapes checked)."""
    target = persistent_buffers(model)
    _check("buffers", target, buffers)
    for t, s in zip(target, buffers):
        t.copy_(s)


def snapshot(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Detached copies of ``tensors``."""
    return [t.detach().clone() for t in tensors]
