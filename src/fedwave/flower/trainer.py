"""fedwave's UEs as a Flower ClientApp trains them: the same data split, initial model and local SGD.

:class:`FedwaveUEs` builds, from a :class:`~fedwave.config.Config`, exactly what
:func:`fedwave.fl.run.build_simulation` builds for the UEs and the BS (dataset, partition, initial model,
one user of the users layer per UE) and trains UE ``k`` in round ``r`` from the model it receives with the
driver's stream ``torch_generator(seed, "train", r, k)``. So a Flower client that calls :meth:`train` runs
the very SGD steps (same batches, same shuffles) a fedwave UE runs.

Only what both sides compute alike is accepted: FedAvg (local epochs) with the plain server step (``sgd``,
lr 1, no momentum), no differential privacy, faults, adversaries or event trigger, and models without
buffers (the Flower bridge carries parameters only).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from fedwave.config import Config
from fedwave.data.federated import dataset_for, partition_for
from fedwave.errors import ConfigError
from fedwave.models import build_model
from fedwave.rng import derive_seed, torch_generator
from fedwave.server.evaluate import Evaluation, evaluate
from fedwave.server.payload import build_payload
from fedwave.users import User, UserDataSource, construct_user
from fedwave.users.datasource import dataset_metadata
from fedwave.users.tensors import load_parameters, persistent_buffers

_CACHE: dict[str, FedwaveUEs] = {}


class _Case:
    """The ``cfg_case`` (user section and seed) ``construct_user`` reads."""

    def __init__(self, user: Any, seed: int) -> None:
        self.user = user
        self.seed = seed


def check_bridgeable(cfg: Config) -> None:
    """Refuse a config whose run a Flower FedAvg app cannot reproduce.

    Raises:
        ConfigError: names the key to change.
    """
    problems = []
    if cfg.fl.algorithm != "fedavg":
        problems.append("fl.algorithm must be fedavg (Flower's FedAvg averages models)")
    s = cfg.server
    if s.optimizer != "sgd" or s.lr != 1.0 or s.momentum != 0.0 or s.norm_bound is not None:
        problems.append("server must be plain FedAvg: server.optimizer sgd, lr 1, momentum 0, no norm_bound")
    if cfg.dp.level != "off":
        problems.append("dp.level must be off")
    if cfg.faults.active or cfg.adversary.active:
        problems.append("faults and adversary must be off")
    if cfg.wireless.event_trigger.enabled:
        problems.append("wireless.event_trigger.enabled must be false")
    if problems:
        raise ConfigError("this config cannot run as a Flower app: " + "; ".join(problems))


class FedwaveUEs:
    """The UEs, initial model and test split of a fedwave config, for a Flower app.

    Attributes:
        names: the model's parameter names (the keys of the Flower ArrayRecord), in parameter order.
    """

    def __init__(self, cfg: Config) -> None:
        check_bridgeable(cfg)
        self.cfg = cfg
        ds = dataset_for(cfg)
        parts = partition_for(cfg, ds.y_train.numpy())
        self.data = UserDataSource.from_dataset(ds, parts)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg.seed, "model-init"))
            self.model = build_model(cfg.model.name, tuple(ds.input_shape), ds.num_classes)
        if persistent_buffers(self.model):
            raise ConfigError(
                f"model.name {cfg.model.name!r} has buffers (BatchNorm statistics); the Flower bridge "
                "carries parameters only: choose a model without buffers (mlp, 2nn, cnn, lenet)"
            )
        self.names = [name for name, _ in self.model.named_parameters()]
        self.metadata = dataset_metadata(ds)
        self.x_test, self.y_test = ds.x_test, ds.y_test
        self._working = copy.deepcopy(self.model)
        self._users: dict[int, User] = {}

    @classmethod
    def cached(cls, cfg: Config) -> FedwaveUEs:
        """One instance per config and process (Flower's workers run many rounds in one process)."""
        key = cfg.model_dump_json()
        if key not in _CACHE:
            _CACHE[key] = cls(cfg)
        return _CACHE[key]

    def initial_parameters(self) -> list[torch.Tensor]:
        """The initial global model's parameters (fedwave's ``model-init`` stream)."""
        return [p.detach().clone() for p in self.model.parameters()]

    def user(self, ue: int) -> User:
        """UE ``ue``'s user (the users layer of ``cfg.user``), built on first use."""
        if not 0 <= ue < self.cfg.fl.num_ues:
            raise ConfigError(f"UE {ue} is outside 0..{self.cfg.fl.num_ues - 1} (fl.num_ues)")
        if ue not in self._users:
            user_cfg = self.cfg.user.model_copy(update={"user_idx": ue})
            self._users[ue] = construct_user(
                self.model,
                nn.CrossEntropyLoss(),
                _Case(user_cfg, self.cfg.seed),
                {"device": torch.device("cpu"), "dtype": torch.float32},
                data=self.data,
                seed=self.cfg.seed,
                working_model=self._working,
            )
        return self._users[ue]

    def train(self, ue: int, round_: int, parameters: list[torch.Tensor]) -> tuple[list[torch.Tensor], int]:
        """UE ``ue``'s local training in round ``round_`` (0-based) from ``parameters``.

        Returns:
            The trained parameters (the user's model after its SGD steps, bit for bit) and the number of
            samples the UE holds (FedAvg's weight, as fedwave's BS weights by samples).
        """
        user = self.user(ue)
        model = copy.deepcopy(self.model)
        load_parameters(model, parameters)
        payload = build_payload(model, with_buffers=False, buffers_mode="train", metadata=self.metadata)
        user.compute_local_updates(
            payload, rng=torch_generator(self.cfg.seed, "train", round_, ue), return_true_user_data=False
        )
        return [p.detach().clone() for p in user.model.parameters()], user.num_data_points

    def evaluate(self, parameters: list[torch.Tensor]) -> Evaluation:
        """Test accuracy and loss of ``parameters`` on the BS's test split."""
        model = copy.deepcopy(self.model)
        load_parameters(model, parameters)
        return evaluate(model, self.x_test, self.y_test)
