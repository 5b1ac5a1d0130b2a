"""Typed configuration of the UEs' devices: compute speed and energy of a local update (``DevicesConfig``).

Profiles are equal, drawn from a distribution, or taken from device classes; see
:mod:`fedwave.devices.profiles` for the time and energy models they parameterise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fedwave.configbase import Section


class SpeedDistributionConfig(Section):
    """Distribution of device speeds (FLOP/s for the flops model, CPU Hz for the cycles model)."""

    kind: Literal["lognormal", "uniform"] = Field(
        default="lognormal", description="'lognormal' or 'uniform'."
    )
    median: float = Field(default=1e9, gt=0, description="Lognormal median speed (FLOP/s or Hz).")
    sigma: float = Field(default=0.5, ge=0, le=5, description="Lognormal sigma of ln(speed).")
    low: float | None = Field(default=None, gt=0, description="Uniform lower bound (FLOP/s or Hz).")
    high: float | None = Field(default=None, gt=0, description="Uniform upper bound (FLOP/s or Hz).")

    @model_validator(mode="after")
    def _bounds(self) -> SpeedDistributionConfig:
        if self.kind == "uniform":
            if self.low is None or self.high is None:
                raise ValueError("devices.distribution: kind 'uniform' needs both 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"devices.distribution: low ({self.low}) exceeds high ({self.high})")
        return self


class DeviceClassConfig(Section):
    """A class of devices: a share of the UEs with the same speed and energy figures."""

    name: str = Field(description="Class name (recorded per UE).")
    share: float = Field(gt=0, le=1, description="Fraction of the UEs in this class (shares sum to 1).")
    flops_per_s: float = Field(default=1e9, gt=0, description="Effective training throughput in FLOP/s.")
    cpu_hz: float = Field(default=1e9, gt=0, description="CPU frequency f in Hz (cycles model).")
    cycles_per_sample: float | None = Field(
        default=None,
        gt=0,
        description="CPU cycles C per sample (cycles model); class default of devices if unset.",
    )
    kappa: float | None = Field(
        default=None, gt=0, description="Switched capacitance; devices.kappa if unset."
    )
    joules_per_flop: float | None = Field(
        default=None, gt=0, description="Energy per FLOP in J; devices.joules_per_flop if unset."
    )


class DevicesConfig(Section):
    """Device profiles: compute speed and energy of a local update."""

    profile: Literal["equal", "distribution", "classes"] = Field(
        default="equal",
        description="'equal': every UE has the same speed; 'distribution': speeds drawn per UE from "
        "'distribution'; 'classes': UEs split among 'classes' by share.",
    )
    model: Literal["flops", "cycles"] = Field(
        default="flops",
        description="'flops': time = FLOPs / flops_per_s, energy = joules_per_flop * FLOPs; 'cycles': "
        "time = C D / f, energy = kappa C D f^2.",
    )
    flops_per_s: float = Field(
        default=1e9, gt=0, description="Effective on-device training throughput in FLOP/s (equal profile)."
    )
    cpu_hz: float = Field(
        default=1e9, gt=0, description="CPU frequency f in Hz (cycles model, equal profile)."
    )
    cycles_per_sample: float | None = Field(
        default=None,
        gt=0,
        description="CPU cycles C per training sample (cycles model); measured FLOPs per sample / "
        "flops_per_cycle if unset.",
    )
    flops_per_cycle: float = Field(
        default=1.0, gt=0, description="FLOPs per CPU cycle, to derive cycles_per_sample from measured FLOPs."
    )
    kappa: float = Field(
        default=1e-28, gt=0, description="Effective switched capacitance kappa (cycles energy)."
    )
    joules_per_flop: float = Field(
        default=1e-10, gt=0, description="Energy per FLOP in J (flops energy model)."
    )
    distribution: SpeedDistributionConfig = Field(
        default_factory=SpeedDistributionConfig,
        description="Speed distribution ('distribution' profile).",
    )
    classes: list[DeviceClassConfig] = Field(
        default_factory=list, description="Device classes ('classes' profile)."
    )

    @model_validator(mode="after")
    def _classes(self) -> DevicesConfig:
        if self.profile == "classes":
            if not self.classes:
                raise ValueError("devices.profile is 'classes' but devices.classes is empty")
            total = sum(c.share for c in self.classes)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"devices.classes shares sum to {total:.6g}; they must sum to 1")
            names = [c.name for c in self.classes]
            if len(set(names)) != len(names):
                raise ValueError(f"devices.classes names must be unique, got {names}")
        return self
