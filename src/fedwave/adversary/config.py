"""Typed configuration of faulty UEs (``faults``): who misbehaves, how, and how often.

A share (``fraction``) or an explicit list (``ues``) of UEs is faulty for the whole run; in each round a
faulty UE misbehaves with probability ``probability``. What it does (``kind``) comes from the behaviour
registry of :mod:`fedwave.adversary.behaviours`: NaN, Inf, huge or zero updates, or silence.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from fedwave.adversary.behaviours import BEHAVIOURS
from fedwave.configbase import Section


class FaultsConfig(Section):
    """Faulty UEs: what they send instead of their update (fault injection)."""

    kind: str = Field(
        default="none",
        description="none | nan | inf | huge (update times scale) | zero | silent (never answers)",
    )
    fraction: float = Field(default=0.0, ge=0.0, le=1.0, description="share of the UEs that are faulty")
    ues: list[int] | None = Field(default=None, description="explicit faulty UE ids (instead of fraction)")
    probability: float = Field(
        default=1.0, gt=0.0, le=1.0, description="chance that a faulty UE misbehaves in a given round"
    )
    scale: float = Field(default=1e30, description="'huge': the factor the update is multiplied by")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v != "none" and v not in BEHAVIOURS:
            raise ValueError(f"unknown fault kind {v!r}; choose one of none, {', '.join(sorted(BEHAVIOURS))}")
        return v

    @model_validator(mode="after")
    def _who(self) -> FaultsConfig:
        if self.ues is not None:
            if self.fraction > 0:
                raise ValueError("give faults.ues or faults.fraction, not both")
            if len(set(self.ues)) != len(self.ues) or any(u < 0 for u in self.ues):
                raise ValueError(f"faults.ues must be distinct non-negative UE ids, got {self.ues}")
        return self

    @property
    def active(self) -> bool:
        """Whether any UE is faulty."""
        return self.kind != "none" and (self.fraction > 0 or bool(self.ues))
