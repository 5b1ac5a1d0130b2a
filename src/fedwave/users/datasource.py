"""``UserDataSource``: the training data of all users, partitioned, with the dataset's metadata.

This is the one home of the concept. It depends on nothing in ``fedwave.data``: ``fedwave.data.federated``
builds it from a config (and re-exports it), and ``fedwave.users`` consumes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from fedwave.errors import ConfigError


@dataclass
class UserDataSource:
    """The training data of all users: the samples and one index array per user (disjoint partition).

    Attributes:
        inputs: all training inputs, shape (N, *input_shape).
        labels: all training labels, shape (N,).
        parts: ``parts[k]`` holds the sample indices of user k.
        data_key: ``"inputs"`` for tensors, ``"input_ids"`` for token data.
        metadata: dataset facts the users may show (``plot``): ``mean`` and ``std`` per channel
            (``x_raw = x * std + mean``, raw range [0, 1]), ``class_names``, ``classes`` (count),
            ``name``, ``shape``. Empty when unknown.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    parts: Sequence[Any]
    data_key: str = "inputs"
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dataset(cls, dataset: Any, parts: Sequence[Any]) -> UserDataSource:
        """The training split of a ``fedwave.data.Dataset`` partitioned by ``parts``, with its metadata."""
        return cls(dataset.x_train, dataset.y_train, parts, metadata=dataset_metadata(dataset))

    @property
    def num_users(self) -> int:
        """Number of users the data is partitioned for."""
        return len(self.parts)

    def user_data(self, idx: int, num_data_points: int | Literal["all"]) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``num_data_points`` samples of user ``idx`` (always the same ones), or all of them."""
        if not 0 <= idx < self.num_users:
            raise ConfigError(f"user index {idx} is outside the {self.num_users} users of the partition")
        index = torch.as_tensor(self.parts[idx], dtype=torch.long)
        if num_data_points != "all":
            if num_data_points > index.numel():
                raise ConfigError(
                    f"user {idx} holds {index.numel()} samples but num_data_points={num_data_points}; "
                    "lower num_data_points or use fewer users"
                )
            index = index[:num_data_points]
        return self.inputs[index], self.labels[index]


def dataset_metadata(dataset: Any) -> dict[str, Any]:
    """Name, sample shape, class count and names, and per-channel mean/std of a dataset."""
    return {
        "name": dataset.name,
        "shape": tuple(dataset.input_shape),
        "classes": int(dataset.num_classes),
        "class_names": tuple(dataset.classes),
        "mean": tuple(float(m) for m in dataset.mean),
        "std": tuple(float(s) for s in dataset.std),
    }
