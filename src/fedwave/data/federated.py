"""The run's data: the dataset of a config, partitioned among its UEs.

``UserDataSource`` lives in ``fedwave.users.datasource`` (re-exported here); this module imports the users
package only for that class, and ``fedwave.users`` never imports ``fedwave.data`` at import time.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np

from fedwave.data.datasets import Dataset, load_dataset
from fedwave.data.partition import partition
from fedwave.errors import ConfigError
from fedwave.users.datasource import UserDataSource

__all__ = ["UserDataSource", "dataset_for", "partition_for", "user_data_source"]


@lru_cache(maxsize=4)
def _cached(name: str, root: str | None, seed: int, test_fraction: float, max_train: int | None) -> Dataset:
    return load_dataset(name, root=root, seed=seed, test_fraction=test_fraction, max_train=max_train)


def dataset_for(cfg: Any) -> Dataset:
    """The dataset of ``cfg.data`` (cached per process: datasets are immutable)."""
    d = cfg.data
    return _cached(d.dataset, d.root, int(cfg.seed), float(d.test_fraction), d.max_train)


def partition_for(cfg: Any, labels: np.ndarray, num_users: int | None = None) -> list[np.ndarray]:
    """The per-UE index arrays of ``cfg.data.partition`` (a pure function of labels, UEs and seed)."""
    d = cfg.data
    params: dict[str, Any] = {
        "dirichlet": {"alpha": d.alpha},
        "shards": {"shards_per_user": d.shards_per_user},
        "iid": {"lognormal_sigma": d.lognormal_sigma} if d.lognormal_sigma > 0 else {},
    }.get(d.partition, {})
    if num_users is not None:
        return partition(d.partition, labels, num_users, seed=int(cfg.seed), **params)
    try:
        return partition(d.partition, labels, cfg.fl.num_ues, seed=int(cfg.seed), **params)
    except ConfigError as exc:  # say it with the config's keys
        detail = re.sub(r"\bnum_users\b", "fl.num_ues", str(exc))
        for name in params:
            detail = re.sub(rf"\b{name}\b", f"data.{name}", detail)
        raise ConfigError(
            f"data.partition={d.partition} cannot split the {labels.size} training samples of "
            f"data.dataset={d.dataset} among fl.num_ues={cfg.fl.num_ues} UEs: {detail}"
        ) from None


def user_data_source(cfg: Any) -> UserDataSource:
    """Training data of every UE of ``cfg`` (partitioned with ``cfg.seed``), with the dataset's metadata.

    The test split stays with the BS.
    """
    ds = dataset_for(cfg)
    labels = ds.y_train.numpy()
    num_users = getattr(cfg.fl, "num_ues", None) if hasattr(cfg, "fl") else None
    if num_users is None:
        num_users = max(cfg.user.user_range[1], cfg.user.user_idx + 1)
    parts = partition_for(cfg, labels, num_users)
    return UserDataSource.from_dataset(ds, parts)
