"""Attacks by name: every attack is a function of what the BS received and what it knows.

``attack(obs, server, cfg, *, rng, progress) -> Reconstruction`` with ``obs`` an :class:`Observation`
(the decoded update and the metadata the threat model exposes), ``server`` a :class:`ServerView` (the
architecture, the broadcast parameters and buffers, the data format) and ``cfg`` the ``attack`` section.
Nothing else reaches an attack: in particular not the user's ``true_user_data``. :func:`run_attack` gives
each attack its own copy of the model, so the model the BS holds is never changed.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Callable
from typing import Protocol

import torch

from fedwave.errors import ConfigError
from fedwave.privacy.attacks.base import Progress, Reconstruction
from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.attacks.observation import Observation, ServerView


class AttackFn(Protocol):
    """The signature every attack has."""

    def __call__(
        self,
        obs: Observation,
        server: ServerView,
        cfg: AttackConfig,
        *,
        rng: torch.Generator,
        progress: Progress | None = None,
    ) -> Reconstruction: ...


_REGISTRY: dict[str, tuple[AttackFn, str]] = {}


def register_attack(name: str, description: str) -> Callable[[AttackFn], AttackFn]:
    """Register an attack function under ``name`` (decorator-style)."""

    def wrap(fn: AttackFn) -> AttackFn:
        _REGISTRY[name] = (fn, description)
        return fn

    return wrap


_BUILTINS_LOADED: list[bool] = []


def _load() -> None:
    if _BUILTINS_LOADED:  # a flag, not "registry non-empty": a user attack may be registered first
        return
    _BUILTINS_LOADED.append(True)
    from fedwave.privacy.attacks.analytic import analytic_attack
    from fedwave.privacy.attacks.dlg import dlg_attack
    from fedwave.privacy.attacks.idlg import idlg_attack
    from fedwave.privacy.attacks.ig import ig_attack

    register_attack("analytic", "exact inputs through a first fully connected layer with bias")(
        analytic_attack
    )
    register_attack("idlg", "iDLG: labels from the last layer's gradient, then L-BFGS matching")(idlg_attack)
    register_attack("dlg", "DLG: Euclidean gradient matching, L-BFGS, labels jointly")(dlg_attack)
    register_attack("ig", "Inverting Gradients: cosine + TV, signed Adam, box, restarts")(ig_attack)


def attack_names() -> list[str]:
    """The registered attack names, in registration order."""
    _load()
    return list(_REGISTRY)


def describe_attacks() -> dict[str, str]:
    """Attack name -> one-line description."""
    _load()
    return {k: v[1] for k, v in _REGISTRY.items()}


def get_attack(name: str) -> AttackFn:
    """The attack function registered as ``name``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones).
    """
    _load()
    if name not in _REGISTRY:
        from fedwave.plugins import find  # a plug-in: import path or entry point

        plugin: AttackFn | None = find("attacks", name)
        if plugin is not None:
            return plugin
        near = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"unknown attack {name!r}.{hint} Valid attacks: {', '.join(_REGISTRY)}")
    return _REGISTRY[name][0]


def run_attack(
    name: str,
    obs: Observation,
    server: ServerView,
    cfg: AttackConfig,
    *,
    rng: torch.Generator,
    progress: Progress | None = None,
) -> Reconstruction:
    """Run attack ``name`` on a private copy of the server's model (with gradients enabled)."""
    fn = get_attack(name)
    private = dataclasses.replace(server, model=copy.deepcopy(server.model))
    with torch.enable_grad():
        result = fn(obs, private, cfg, rng=rng, progress=progress)
    result.data = result.data.detach()
    result.diagnostics.setdefault("attack", name)
    return result
