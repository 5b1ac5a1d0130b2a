"""Errors of the attacks: each says what the attack needs and how to expose it (or guess it)."""

from __future__ import annotations

from fedwave.errors import FedwaveError


class AttackError(FedwaveError):
    """Base class of the errors an attack raises on input it cannot work with."""


class ThreatModelError(AttackError):
    """The threat model hides something the attack needs (labels, sample count, hyperparameters...).

    The message names the missing item, the ``user.provide_*`` flag that would expose it and the
    ``attack.guess.*`` key that would let the attacker guess it instead.
    """


class AttackNotApplicable(AttackError):
    """The model or update does not have the structure the attack relies on (e.g. no first FC layer)."""
