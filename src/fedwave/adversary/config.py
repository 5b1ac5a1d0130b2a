"""Typed configuration of misbehaving UEs: ``faults`` (broken UEs) and ``adversary`` (Byzantine UEs).

Each section makes a share (``fraction``) or an explicit list (``ues``) of the UEs misbehave for the whole
run. Faults are accidents (NaN, Inf, huge or zero updates, silence) that strike with ``probability`` per
round; attackers misbehave in every round with the attack ``adversary.attack``. Both name a behaviour
of :mod:`fedwave.adversary.behaviours`: one mechanism.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from fedwave.adversary.behaviours import ATTACKS, FAULT_KINDS
from fedwave.configbase import Section


class _Who(Section):
    fraction: float = Field(default=0.0, ge=0.0, le=1.0, description="share of the UEs that misbehave")
    ues: list[int] | None = Field(default=None, description="explicit UE ids (instead of fraction)")

    @model_validator(mode="after")
    def _who(self) -> _Who:
        if self.ues is not None:
            if self.fraction > 0:
                raise ValueError("give ues or fraction, not both")
            if len(set(self.ues)) != len(self.ues) or any(u < 0 for u in self.ues):
                raise ValueError(f"ues must be distinct non-negative UE ids, got {self.ues}")
        return self

    def count(self, num_ues: int) -> int:
        """How many of ``num_ues`` UEs misbehave."""
        return len(self.ues) if self.ues is not None else round(self.fraction * num_ues)


class FaultsConfig(_Who):
    """Faulty UEs: what they send instead of their update (fault injection)."""

    kind: str = Field(
        default="none",
        description="none | nan | inf | huge (update times scale) | zero | silent (never answers)",
    )
    probability: float = Field(
        default=1.0, gt=0.0, le=1.0, description="chance that a faulty UE misbehaves in a given round"
    )
    scale: float = Field(default=1e30, description="'huge': the factor the update is multiplied by")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v != "none" and v not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {v!r}; choose one of none, {', '.join(FAULT_KINDS)}")
        return v

    @property
    def active(self) -> bool:
        """Whether any UE is faulty."""
        return self.kind != "none" and (self.fraction > 0 or bool(self.ues))


class AdversaryConfig(_Who):
    """Byzantine UEs: an attack they run in every round, through the same codec and air as honest UEs."""

    attack: str = Field(
        default="none",
        description="none | sign_flip | scale | gaussian | label_flip | alie | ipm",
    )
    factor: float | None = Field(
        default=None,
        description="sign_flip: -factor x update (default 1); scale: factor x update (default 10)",
    )
    sigma: float = Field(default=1.0, gt=0.0, description="gaussian: std of the noise sent instead")
    z: float | None = Field(
        default=None, description="alie: mean - z std; null = the paper's z_max from the UE counts"
    )
    epsilon: float = Field(default=0.5, gt=0.0, description="ipm: sends -epsilon x mean honest update")

    @field_validator("attack")
    @classmethod
    def _known_attack(cls, v: str) -> str:
        if v != "none" and v not in ATTACKS:
            raise ValueError(f"unknown attack {v!r}; choose one of none, {', '.join(ATTACKS)}")
        return v

    @property
    def active(self) -> bool:
        """Whether any UE is malicious."""
        return self.attack != "none" and (self.fraction > 0 or bool(self.ues))
