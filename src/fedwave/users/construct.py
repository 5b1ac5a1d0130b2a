"""``construct_user``: build the user of ``cfg_case.user.user_type`` with its own data.

The data come from a :class:`~fedwave.users.datasource.UserDataSource`. This module does not import
``fedwave.data``; only a call without ``data`` builds the source from ``cfg_case`` through
``fedwave.data.federated`` (imported then, at call time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from torch import nn

from fedwave.errors import ConfigError
from fedwave.users.aggregate import MultiUserAggregate
from fedwave.users.base import LossFn, User
from fedwave.users.config import UserConfig
from fedwave.users.datasource import UserDataSource
from fedwave.users.multi import UserMultiStep
from fedwave.users.single import UserSingleStep

_DEFAULT_POINTS = {"local_gradient": 1, "local_update": 4}


class _CaseLike(Protocol):
    user: UserConfig


def _resolve_points(cfg: UserConfig, user_type: str) -> int | Literal["all"]:
    if cfg.num_data_points is not None:
        return cfg.num_data_points
    return _DEFAULT_POINTS.get(user_type, _DEFAULT_POINTS["local_update"])


_Factory = Callable[
    [
        nn.Module,
        LossFn,
        UserConfig,
        dict[str, Any],
        UserDataSource,
        int,
        "nn.Module | None",
        "int | Literal['all']",
    ],
    User,
]


def _one_user(cls: type[UserSingleStep] | type[UserMultiStep]) -> _Factory:
    def build(
        model: nn.Module,
        loss_fn: LossFn,
        cfg: UserConfig,
        setup: dict[str, Any],
        data: UserDataSource,
        seed: int,
        working: nn.Module | None,
        points: int | Literal["all"],
    ) -> User:
        x, y = data.user_data(cfg.user_idx, points)
        return cls(
            model,
            loss_fn,
            x,
            y,
            cfg,
            setup,
            user_idx=cfg.user_idx,
            seed=seed,
            data_key=data.data_key,
            working_model=working,
            metadata=data.metadata,
        )

    return build


def _aggregate(
    model: nn.Module,
    loss_fn: LossFn,
    cfg: UserConfig,
    setup: dict[str, Any],
    data: UserDataSource,
    seed: int,
    working: nn.Module | None,
    points: int | Literal["all"],
) -> User:
    user_data = [data.user_data(k, points) for k in range(*cfg.user_range)]
    return MultiUserAggregate(
        model, loss_fn, user_data, cfg, setup, seed=seed, data_key=data.data_key, metadata=data.metadata
    )


USER_TYPES: dict[str, _Factory] = {
    "local_gradient": _one_user(UserSingleStep),
    "local_update": _one_user(UserMultiStep),
    "multiuser_aggregate": _aggregate,
}


def construct_user(
    model: nn.Module,
    loss_fn: LossFn,
    cfg_case: Any,
    setup: dict[str, Any],
    *,
    data: UserDataSource | None = None,
    seed: int | None = None,
    working_model: nn.Module | None = None,
) -> User:
    """Build the user that ``cfg_case.user.user_type`` names, holding its own data.

    Args:
        model: the architecture (never modified: the user trains a copy).
        loss_fn: a mean-reduced loss.
        cfg_case: an object with a ``user`` section (a :class:`UserConfig`) and, when ``data`` is not
            given, a ``data`` section from which the dataset and partition are built (a fedwave ``Config``).
        setup: ``{"device": ..., "dtype": ...}``.
        data: the partitioned training data (fedwave extension; built from ``cfg_case`` if omitted).
        seed: seed of the user's random streams (default ``cfg_case.seed`` or 0).
        working_model: a model copy the user may share with users that run one after another.

    Raises:
        ConfigError: unknown ``user_type`` (the message lists the valid ones) or impossible data sizes.
    """
    cfg: UserConfig = cfg_case.user
    user_type = cfg.user_type
    if user_type not in USER_TYPES:
        raise ConfigError(f"user.user_type: unknown '{user_type}'; valid types: {', '.join(USER_TYPES)}")
    run_seed = seed if seed is not None else int(getattr(cfg_case, "seed", 0))
    if data is None:
        from fedwave.data.federated import user_data_source

        data = user_data_source(cfg_case)
    return USER_TYPES[user_type](
        model, loss_fn, cfg, setup, data, run_seed, working_model, _resolve_points(cfg, user_type)
    )
