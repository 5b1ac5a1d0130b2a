"""Shared builders for the user-layer tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from fedwave.users import User, UserConfig, UserDataSource, construct_user, make_setup


def source(num_users: int, per_user: int, shape: tuple[int, ...] = (1, 4), seed: int = 1) -> UserDataSource:
    """Random normal inputs, labels in 0..2, user k holding samples [k*per_user, (k+1)*per_user)."""
    g = torch.Generator().manual_seed(seed)
    n = num_users * per_user
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    parts = [np.arange(k * per_user, (k + 1) * per_user) for k in range(num_users)]
    return UserDataSource(x, y, parts)


def payload(model: nn.Module, buffers: list[torch.Tensor] | None = None, mode: str = "eval") -> dict:
    """A server payload of ``model``'s parameters (and ``buffers``, used in ``mode``)."""
    return {
        "parameters": [p.detach().clone() for p in model.parameters()],
        "buffers": buffers,
        "metadata": {"buffers_mode": mode},
    }


def user(model: nn.Module, data: UserDataSource, **fields: Any) -> User:
    """``construct_user`` with a ``UserConfig`` of ``fields`` over ``data`` (seed 0)."""
    case = SimpleNamespace(user=UserConfig(**fields), seed=0)
    return construct_user(model, nn.CrossEntropyLoss(), case, make_setup(), data=data)
