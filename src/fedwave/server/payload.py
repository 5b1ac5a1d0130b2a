"""The server payload the BS broadcasts: ``{"parameters", "buffers", "metadata"}`` (users.md)."""

from __future__ import annotations

from typing import Any

from torch import nn

from fedwave.users.tensors import persistent_buffers, snapshot


def build_payload(
    model: nn.Module,
    *,
    with_buffers: bool,
    buffers_mode: str = "train",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Snapshot ``model`` into a server payload.

    Args:
        model: the global model.
        with_buffers: send the persistent buffers (e.g. BatchNorm statistics); None otherwise.
        buffers_mode: ``"train"`` (users start local training in train mode from these statistics:
            fedwave's FL loop) or ``"eval"`` (users run on the server's statistics as they are: the
            users.md default when buffers are given).
        metadata: dataset metadata (shape, classes, mean/std...) travelling with the model.
    """
    buffers = persistent_buffers(model)
    meta = dict(metadata or {})
    meta["buffers_mode"] = buffers_mode
    return {
        "parameters": snapshot(list(model.parameters())),
        "buffers": snapshot(buffers) if with_buffers and buffers else None,
        "metadata": meta,
    }
