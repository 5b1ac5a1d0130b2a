"""What an attacking BS works with: the update it received and what it knows itself.

:class:`Observation` holds only what a user's ``shared_data`` puts on the air (``gradients``, ``buffers``,
``metadata``), after the uplink codec, local noise and the channel; ``true_user_data`` has no way in.
:class:`ServerView` is the BS's own knowledge: the architecture, the payload it broadcast (parameters,
buffers) and the data format (shape, classes, normalisation), from which the data box follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import nn

UpdateKind = Literal["gradient", "update"]
_META_KEYS = ("num_data_points", "labels", "local_hyperparams", "data_key")


@dataclass(frozen=True)
class Observation:
    """One UE's update as the BS received it.

    Attributes:
        gradients: the decoded tensors in ``model.parameters()`` order: a gradient of the mean loss
            (``kind="gradient"``, single-step users) or ``p_local - p_server`` (``kind="update"``).
        kind: which of the two the FL protocol says it is (FedSGD or FedAvg: the BS knows).
        metadata: the shared metadata (``num_data_points``, ``labels``, ``local_hyperparams``,
            ``data_key``); entries the threat model hides are None.
        buffers: the user's shared buffers, or None.
    """

    gradients: tuple[torch.Tensor, ...]
    kind: UpdateKind
    metadata: Mapping[str, Any] = field(default_factory=dict)
    buffers: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def from_shared(
        cls,
        shared: Mapping[str, Any],
        kind: UpdateKind,
        *,
        gradients: Sequence[torch.Tensor] | None = None,
    ) -> Observation:
        """The observation of a user's ``shared_data`` (``gradients`` replaces the tensors, e.g. decoded).

        Only the users.md metadata keys are copied; tensors are detached copies.
        """
        tensors = shared["gradients"] if gradients is None else gradients
        meta = dict(shared.get("metadata") or {})
        kept = {k: meta.get(k) for k in _META_KEYS}
        bufs = shared.get("buffers")
        return cls(
            gradients=tuple(t.detach().clone().float() for t in tensors),
            kind=kind,
            metadata=MappingProxyType(kept),
            buffers=tuple(b.detach().clone() for b in bufs) if bufs is not None else None,
        )

    def meta(self, key: str) -> Any:
        """A metadata entry, or None when it was not shared."""
        return self.metadata.get(key)


@dataclass(frozen=True)
class ServerView:
    """What the BS knows without the user: model, broadcast payload, data format.

    Attributes:
        model: the architecture (never modified by an attack: attacks work on a copy).
        parameters: the parameters the BS broadcast, in ``model.parameters()`` order.
        buffers: the buffers it broadcast (None if it sent none).
        buffers_mode: ``"train"`` or ``"eval"``, as in the payload metadata (users.md).
        input_shape: one sample's shape, e.g. ``(1, 28, 28)``.
        num_classes: number of classes.
        mean, std: per-channel normalisation, in the raw [0, 1] range: ``x = (x_raw - mean) / std``.
    """

    model: nn.Module
    parameters: tuple[torch.Tensor, ...]
    buffers: tuple[torch.Tensor, ...] | None
    buffers_mode: str
    input_shape: tuple[int, ...]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_payload(
        cls,
        model: nn.Module,
        payload: Mapping[str, Any],
        *,
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> ServerView:
        """The view of a BS that broadcast ``payload`` (users.md keys) for ``model``."""
        bufs = payload.get("buffers")
        mode = str((payload.get("metadata") or {}).get("buffers_mode", "eval"))
        return cls(
            model=model,
            parameters=tuple(p.detach().clone() for p in payload["parameters"]),
            buffers=tuple(b.detach().clone() for b in bufs) if bufs is not None else None,
            buffers_mode=mode,
            input_shape=tuple(int(s) for s in input_shape),
            num_classes=int(num_classes),
            mean=tuple(float(m) for m in mean),
            std=tuple(float(s) for s in std),
        )

    @property
    def train_mode(self) -> bool:
        """Whether the user ran its model in ``train()`` mode (users.md synchronisation rule)."""
        return self.buffers is None or self.buffers_mode == "train"

    def _channel_shape(self) -> tuple[int, ...]:
        return (len(self.mean),) + (1,) * (len(self.input_shape) - 1)

    def box(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw data range [0, 1] in normalised coordinates: per-channel (low, high), broadcastable."""
        mean = torch.tensor(self.mean).reshape(self._channel_shape())
        std = torch.tensor(self.std).reshape(self._channel_shape())
        return (0.0 - mean) / std, (1.0 - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised samples ``(N, *input_shape)`` back to the raw [0, 1] range."""
        mean = torch.tensor(self.mean, dtype=x.dtype).reshape(self._channel_shape())
        std = torch.tensor(self.std, dtype=x.dtype).reshape(self._channel_shape())
        return x * std + mean
