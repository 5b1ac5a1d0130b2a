"""``MultiUserAggregate``: the mean update of several users, as a server sees it under secure aggregation."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from fedwave.server.aggregate import aggregate_buffers, weighted_mean
from fedwave.users.base import LossFn, Payload, SharedData, TrueData, User
from fedwave.users.config import UserConfig
from fedwave.users.multi import UserMultiStep
from fedwave.users.single import UserSingleStep
from fedwave.users.tensors import persistent_buffers, snapshot


class MultiUserAggregate(User):
    """The aggregate of the users ``range(*user_range)``.

    Each sub-user has its own data and its own local privacy measures; all of them share one working
    copy of the model (they run one after another), so memory does not grow with the number of users.
    Every sub-user starts from the server's state: the payload's parameters, and its buffers or, when the
    server sends none, one shared snapshot of the server model's buffers taken at construction. So no
    running statistics carry over from one sub-user to the next or from one query to the next.
    Sub-users are single-step users when ``num_local_updates == 1`` and multi-step users otherwise.

    The shared update is the **arithmetic mean** of the sub-users' updates, tensor by tensor
    (``multiuser_weighting="samples"`` weights each by its number of samples instead). Buffers: float
    buffers are averaged the same way, integer buffers take the maximum.
    """

    kind = "multiuser aggregate"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        user_data: list[tuple[torch.Tensor, torch.Tensor]],
        cfg: UserConfig,
        setup: dict[str, Any],
        *,
        seed: int = 0,
        data_key: str = "inputs",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        start = cfg.user_range[0]
        if len(user_data) != cfg.user_range[1] - start:
            raise ValueError(f"MultiUserAggregate needs data for {cfg.user_range[1] - start} users")
        inputs = torch.cat([x for x, _ in user_data])
        labels = torch.cat([y for _, y in user_data])
        working = copy.deepcopy(model)
        server_buffers = snapshot(persistent_buffers(model))
        common: dict[str, Any] = {
            "seed": seed,
            "data_key": data_key,
            "working_model": working,
            "initial_buffers": server_buffers,
            "metadata": metadata,
        }
        super().__init__(model, loss_fn, inputs, labels, cfg, setup, user_idx=start, **common)
        sub_cls = UserSingleStep if cfg.num_local_updates == 1 and cfg.local_epochs is None else UserMultiStep
        self.users: list[User] = [
            sub_cls(model, loss_fn, x, y, cfg, setup, user_idx=start + i, **common)
            for i, (x, y) in enumerate(user_data)
        ]
        self.num_users = len(self.users)

    def compute_local_updates(
        self,
        server_payload: Payload,
        custom_data: dict[str, torch.Tensor] | bool | None = None,
        *,
        rng: torch.Generator | None = None,
        return_true_user_data: bool = True,
    ) -> tuple[SharedData, TrueData]:
        """Query every sub-user in order and average.

        ``custom_data`` is not supported here. As in the original framework,
        ``compute_local_updates(payload, False)`` (a bool in second place) means
        ``return_true_user_data=False``: the true data of the sub-users is not collected (to save memory)
        and ``true_user_data`` holds ``None`` under each key. By default it holds the data and labels of
        **all** sub-users concatenated in user order, and the aggregate of their buffers.
        """
        if isinstance(custom_data, bool):
            return_true_user_data, custom_data = custom_data, None
        if custom_data is not None:
            raise ValueError(
                "MultiUserAggregate takes each sub-user's own data; custom_data is not supported"
            )
        self.counted_queries += 1
        results = [
            u.compute_local_updates(server_payload, rng=rng, return_true_user_data=return_true_user_data)
            for u in self.users
        ]
        for key, value in self.users[0].metadata.items():  # dataset facts the payload carried (plot)
            self.metadata.setdefault(key, value)
        counts = [u.num_data_points for u in self.users]
        weights = counts if self.cfg.multiuser_weighting == "samples" else None
        mean = weighted_mean([s["gradients"] for s, _ in results], weights)
        shared_buffers = [s["buffers"] for s, _ in results]
        buffers = None
        if all(b is not None for b in shared_buffers) and shared_buffers:
            buffers = aggregate_buffers([b for b in shared_buffers if b is not None], weights)
        shown = [s["metadata"]["labels"] for s, _ in results]
        labels = torch.cat(shown) if all(t is not None for t in shown) else None
        metadata = self._metadata(labels, sum(counts), None)
        metadata["num_users"] = self.num_users
        hypers = [s["metadata"]["local_hyperparams"] for s, _ in results]
        if hypers[0] is not None:
            metadata["local_hyperparams"] = {
                **{k: v for k, v in hypers[0].items() if k != "labels"},
                "labels": [h["labels"] for h in hypers],  # per sub-user, per step (sorted)
            }
        shared: SharedData = {"gradients": mean, "buffers": buffers, "metadata": metadata}
        if not return_true_user_data:
            return shared, self._true_data(self.inputs, self.labels, enabled=False)
        true_data: TrueData = {
            "data": torch.cat([t["data"] for _, t in results]),
            "labels": torch.cat([t["labels"] for _, t in results]),
            "buffers": aggregate_buffers([t["buffers"] for _, t in results], weights),
        }
        return shared, true_data

    def __repr__(self) -> str:
        lo, hi = self.cfg.user_range
        head = (
            f"MultiUserAggregate ({self.kind}) of users [{lo}, {hi}): {self.num_users} users, "
            f"{self.num_data_points} samples in all, {self.cfg.multiuser_weighting} mean"
        )
        return head + "\n" + repr(self.users[0]).split("\n", 1)[1]
