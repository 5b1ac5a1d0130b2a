"""Shared set-up of the attack tests: tiny models on 8x8 digits, one user's update as the BS receives it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from fedwave.data.datasets import Dataset, load_dataset
from fedwave.models import build_model
from fedwave.privacy.attacks import AttackConfig, Observation, ServerView
from fedwave.privacy.metrics import psnr
from fedwave.server.payload import build_payload
from fedwave.users import UserConfig, construct_user, make_setup
from fedwave.users.construct import UserDataSource

#: fast settings: a few optimisation steps are enough on 8x8 digits with an untrained lenet
FAST = {"dlg": {"iterations": 8, "tol": 1e-8}, "ig": {"iterations": 150, "restarts": 1}}


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


def make_model(name: str, ds: Dataset, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, tuple(ds.input_shape), ds.num_classes)


def fast_cfg(name: str, **kw: Any) -> AttackConfig:
    data: dict[str, Any] = {"name": name, **FAST, **kw}
    return AttackConfig.model_validate(data)


class _Case:
    def __init__(self, user: UserConfig) -> None:
        self.user = user
        self.seed = 0


@dataclass
class Seen:
    """One query: what the BS received, what it knows, and the true data (for scoring only)."""

    obs: Observation
    server: ServerView
    true: dict[str, Any]
    shared: dict[str, Any]


def observe(model: torch.nn.Module, ds: Dataset, indices: list[int], **user: Any) -> Seen:
    """Let a user holding ``indices`` answer the BS's payload for ``model``."""
    ucfg = UserConfig(num_data_points=len(indices), **user)
    source = UserDataSource(ds.x_train, ds.y_train, [indices])
    u = construct_user(model, torch.nn.CrossEntropyLoss(), _Case(ucfg), make_setup(), data=source, seed=0)
    payload = build_payload(model, with_buffers=False)
    shared, true = u.compute_local_updates(payload)
    kind = "update" if ucfg.user_type == "local_update" else "gradient"
    obs = Observation.from_shared(shared, kind)
    server = ServerView.from_payload(
        model, payload, input_shape=ds.input_shape, num_classes=ds.num_classes, mean=ds.mean, std=ds.std
    )
    return Seen(obs, server, true, shared)


def mean_image_psnr(ds: Dataset, true_norm: torch.Tensor) -> float:
    """PSNR of the best sample-agnostic guess (the training-set mean image) against the true samples.

    The mean image minimises the expected MSE of any guess that ignores the sample, so an attack that
    learned nothing about the sample cannot beat it on average; the tests ask for a wide margin over it.
    """
    mean = ds.denormalize(ds.x_train).mean(0, keepdim=True)
    t = ds.denormalize(true_norm)
    return psnr(float(((mean - t) ** 2).mean()))


def attack_psnr(seen: Seen, data: torch.Tensor) -> float:
    from fedwave.privacy.metrics import sample_metrics

    rec = seen.server.denormalize(data)
    true = seen.server.denormalize(seen.true["data"])
    scores = sample_metrics(
        rec, torch.zeros(len(rec), dtype=torch.long), true, torch.zeros(len(rec), dtype=torch.long)
    )
    values = [s.psnr for s in scores]
    return float(sorted(values)[len(values) // 2]) if values else -math.inf
