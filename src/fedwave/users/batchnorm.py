"""Running statistics of normalisation layers (BatchNorm, InstanceNorm with ``track_running_stats``).

- :func:`tracks_running_stats`: does a module update buffers in ``train()`` mode?
- :func:`exact_batch_statistics`: the original framework's single-step rule ("momentum None"): for the
  duration of the block, every such layer has its running statistics reset and ``momentum=None``
  (cumulative average), so after one forward pass ``running_mean`` is exactly the batch mean,
  ``running_var`` exactly the unbiased batch variance and ``num_batches_tracked`` is 1. The layers'
  momentum is restored on exit (the model may be a working copy shared with other users).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.batchnorm import _NormBase


def _norm_layers(model: nn.Module) -> list[_NormBase]:
    return [m for m in model.modules() if isinstance(m, _NormBase) and m.track_running_stats]


def tracks_running_stats(model: nn.Module) -> bool:
    """True when some layer of ``model`` updates running statistics in ``train()`` mode."""
    return bool(_norm_layers(model))


@contextmanager
def exact_batch_statistics(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Reset running statistics and use momentum None inside the block (no-op if not ``enabled``)."""
    layers = _norm_layers(model) if enabled else []
    saved = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    try:
        yield
    finally:
        for m, momentum in zip(layers, saved):
            m.momentum = momentum
