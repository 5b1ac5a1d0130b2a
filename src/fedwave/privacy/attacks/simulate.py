"""The attacker's replica of the user's local computation, differentiable in the guessed data.

Single-step users share the gradient of the mean cross-entropy over their batch; multi-step users share
``p_local - p_server`` after ``steps`` SGD steps of ``data_per_step`` samples, step t using samples
``t*data_per_step .. (t+1)*data_per_step - 1`` modulo ``num_data`` (users.md's cycling rule). The replica
unrolls those steps with ``torch.func.functional_call`` so the result can be differentiated with respect
to the guessed inputs and (soft) labels. What the user did not share is taken from ``attack.guess``; a
missing item without a guess raises :class:`ThreatModelError`. Local noise, clipping and the codec are
not replicated: the attacker matches against what it received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.attacks.errors import ThreatModelError
from fedwave.privacy.attacks.observation import Observation, ServerView


@dataclass
class LocalSchedule:
    """The user's local computation as the attacker reconstructs it.

    Attributes:
        kind: ``"gradient"`` (one gradient over all samples) or ``"update"`` (SGD steps).
        num_data: number of samples.
        lr: local learning rate (updates only).
        batches: per step, the sample indices it uses (updates only).
        step_labels: per step, the labels shared in ``local_hyperparams`` (or None).
        guessed: the items taken from ``attack.guess`` because the threat model hid them.
    """

    kind: str
    num_data: int
    lr: float = 0.0
    batches: list[torch.Tensor] = field(default_factory=list)
    step_labels: list[torch.Tensor] | None = None
    guessed: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Number of local SGD steps (1 for a gradient)."""
        return len(self.batches) if self.kind == "update" else 1


def _missing(what: str, flag: str, guess: str) -> ThreatModelError:
    return ThreatModelError(
        f"the threat model hides the {what} and no guess is configured; expose it with "
        f"attack.user.{flag}=true or give attack.guess.{guess}=VALUE"
    )


def num_data_points(obs: Observation, cfg: AttackConfig, guessed: dict[str, Any] | None = None) -> int:
    """The number of samples: shared, else the number of shared labels, else ``attack.guess``."""
    n = obs.meta("num_data_points")
    if n is not None:
        return int(n)
    labels = obs.meta("labels")
    if labels is not None:
        return len(labels)
    if cfg.guess.num_data_points is None:
        raise _missing("number of samples", "provide_num_data_points", "num_data_points")
    if guessed is not None:
        guessed["num_data_points"] = cfg.guess.num_data_points
    return cfg.guess.num_data_points


def resolve_schedule(obs: Observation, cfg: AttackConfig) -> LocalSchedule:
    """The local computation to replicate, from shared metadata or configured guesses."""
    guessed: dict[str, Any] = {}
    n = num_data_points(obs, cfg, guessed)
    if obs.kind == "gradient":
        return LocalSchedule("gradient", n, guessed=guessed)
    hyper = obs.meta("local_hyperparams")
    if hyper is not None:
        lr, steps, per_step = float(hyper["lr"]), int(hyper["steps"]), int(hyper["data_per_step"])
        step_labels = [torch.as_tensor(t).long() for t in hyper.get("labels") or []] or None
    else:
        values = {"lr": cfg.guess.lr, "steps": cfg.guess.steps, "data_per_step": cfg.guess.data_per_step}
        for key, value in values.items():
            if value is None:
                raise _missing(f"local {key.replace('_', ' ')}", "provide_local_hyperparams", key)
            guessed[key] = value
        lr, steps, per_step = (
            float(values["lr"] or 0),
            int(values["steps"] or 0),
            int(values["data_per_step"] or 0),
        )
        step_labels = None
    batches = [torch.arange(t * per_step, (t + 1) * per_step) % n for t in range(steps)]
    return LocalSchedule("update", n, lr, batches, step_labels, guessed)


def slot_labels(schedule: LocalSchedule) -> torch.Tensor | None:
    """Per-sample labels implied by the per-step labels of ``local_hyperparams`` (None if not shared)."""
    if schedule.step_labels is None or len(schedule.step_labels) != len(schedule.batches):
        return None
    labels = torch.full((schedule.num_data,), -1, dtype=torch.long)
    for idx, lab in zip(schedule.batches, schedule.step_labels):
        if lab.numel() != idx.numel():
            return None
        labels[idx] = lab
    return labels if bool((labels >= 0).all()) else None


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against hard labels (int64) or label probabilities (float, (N, C))."""
    return F.cross_entropy(logits, target)


class UpdateReplica:
    """``replica(x, y)`` -> the tensors the user would have shared for inputs ``x`` and labels ``y``.

    ``y`` holds int64 labels or (N, C) probabilities (soft labels). The model given is used only through
    ``functional_call`` with copies of the server's parameters and buffers, so it is never changed.
    """

    def __init__(self, model: nn.Module, server: ServerView, schedule: LocalSchedule) -> None:
        self.model = model
        self.schedule = schedule
        self.names = [n for n, _ in model.named_parameters()]
        self.params = {n: p.detach().clone() for n, p in zip(self.names, server.parameters)}
        model_buffers = dict(model.named_buffers())
        if server.buffers is not None:
            persistent = _persistent_buffer_names(model)
            model_buffers.update(dict(zip(persistent, server.buffers)))
        self.buffers = {n: b.detach().clone() for n, b in model_buffers.items()}
        self.model.train(server.train_mode)

    def _forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        buffers = {n: b.clone() for n, b in self.buffers.items()}
        out: torch.Tensor = functional_call(self.model, (params, buffers), (x,))
        return out

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        params = {n: p.requires_grad_(True) if not p.requires_grad else p for n, p in self.params.items()}
        if self.schedule.kind == "gradient":
            loss = _loss(self._forward(params, x), y)
            return list(torch.autograd.grad(loss, list(params.values()), create_graph=True))
        current = dict(params)
        lr = self.schedule.lr
        for idx in self.schedule.batches:
            loss = _loss(self._forward(current, x[idx]), y[idx])
            grads = torch.autograd.grad(loss, list(current.values()), create_graph=True)
            current = {n: p - lr * g for (n, p), g in zip(current.items(), grads)}
        return [current[n] - params[n] for n in self.names]


def _persistent_buffer_names(model: nn.Module) -> list[str]:
    names: list[str] = []
    for mod_name, module in model.named_modules():
        skip = module._non_persistent_buffers_set
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and name not in skip:
                names.append(f"{mod_name}.{name}" if mod_name else name)
    return names
