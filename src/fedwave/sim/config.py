"""Typed configuration of the wireless cell, the devices and the clock (``WirelessConfig``).

Defaults are the scenario defaults of the wireless spec: R = 500 m, W = 20 MHz FDMA, P = 23 dBm,
N0 = -174 dBm/Hz, 8 dB shadowing, Rayleigh fading, synchronous rounds. Lists whose length must match the
number of UEs (``cell.positions_m``, a per-UE ``cell.ue_power_dbm``, ``access.shares``) are checked when
the :class:`~fedwave.sim.clock.Clock` is built, since only then is the number of UEs known.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fedwave.channel.pathloss import PATHLOSS_MODELS
from fedwave.configbase import Section
from fedwave.sim.policies import POLICIES


class PathLossConfig(Section):
    """Large-scale path loss."""

    model: str = Field(
        default="tr36814",
        description="Path-loss model: 'tr36814' (128.1 + 37.6 log10(d/1 km) dB), 'free_space' (Friis at "
        "carrier_hz) or 'power_law' (reference_loss_db + 10 exponent log10(d/reference_distance_m)).",
    )
    carrier_hz: float = Field(default=2e9, gt=0, description="Carrier frequency in Hz (free_space model).")
    exponent: float = Field(
        default=3.76, gt=0, le=10, description="Path-loss exponent alpha (power_law model)."
    )
    reference_distance_m: float = Field(
        default=1000.0, gt=0, description="Reference distance d0 in m (power_law model)."
    )
    reference_loss_db: float = Field(
        default=128.1, description="Loss in dB at the reference distance (power_law)."
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in PATHLOSS_MODELS:
            raise ValueError(f"unknown path-loss model {v!r}; choose one of {sorted(PATHLOSS_MODELS)}")
        return v


class CellConfig(Section):
    """Geometry and radio of the cell: one BS at the origin, UEs around it."""

    radius_m: float = Field(
        default=500.0, gt=0, description="Cell radius R in m (UEs are placed uniformly inside)."
    )
    d_min_m: float = Field(default=10.0, gt=0, description="Minimum UE-BS distance in m.")
    positions_m: list[tuple[float, float]] | None = Field(
        default=None,
        description="Fixed UE positions [[x, y], ...] in m, one per UE; random placement if unset.",
    )
    pathloss: PathLossConfig = Field(default_factory=PathLossConfig, description="Large-scale path loss.")
    shadowing_db: float = Field(
        default=8.0, ge=0, le=30, description="Log-normal shadowing sigma in dB, drawn once per UE."
    )
    fading: Literal["rayleigh", "rician", "none"] = Field(
        default="rayleigh", description="Block fading drawn per UE and round: 'rayleigh', 'rician' or 'none'."
    )
    rician_k: float = Field(
        default=3.0, ge=0, description="Rician factor K (linear LOS/scatter power ratio)."
    )
    noise_psd_dbm_hz: float = Field(default=-174.0, description="Noise power spectral density N0 in dBm/Hz.")
    noise_figure_db: float = Field(
        default=0.0, ge=0, le=30, description="Receiver noise figure in dB (added to N0)."
    )
    ue_power_dbm: float | list[float] = Field(
        default=23.0, description="UE transmit power in dBm: one value for all UEs or a list with one per UE."
    )
    bs_power_dbm: float = Field(default=43.0, description="BS transmit power in dBm (downlink).")

    @field_validator("ue_power_dbm")
    @classmethod
    def _power_range(cls, v: float | list[float]) -> float | list[float]:
        values = v if isinstance(v, list) else [v]
        if not values:
            raise ValueError("ue_power_dbm: give one value or a non-empty list (dBm)")
        for p in values:
            if not -50.0 <= p <= 60.0:
                raise ValueError(f"ue_power_dbm: {p} dBm is outside [-50, 60] dBm")
        return v

    @model_validator(mode="after")
    def _geometry(self) -> CellConfig:
        if self.d_min_m > self.radius_m:
            raise ValueError(
                f"cell.d_min_m ({self.d_min_m} m) must not exceed cell.radius_m ({self.radius_m} m)"
            )
        if self.positions_m is not None:
            if not self.positions_m:
                raise ValueError("cell.positions_m is empty; leave it unset for random placement")
            for i, (x, y) in enumerate(self.positions_m):
                d = math.hypot(x, y)
                if not d >= self.d_min_m:
                    raise ValueError(
                        f"cell.positions_m[{i}] is {d:.3g} m from the BS, closer than "
                        f"cell.d_min_m={self.d_min_m} m (move it or lower d_min_m)"
                    )
        return self


class PacketErrorConfig(Section):
    """Packet errors and retransmissions on the uplink."""

    enabled: bool = Field(default=False, description="Draw packet errors with q = 1 - exp(-m N0 b / (P g)).")
    waterfall_threshold: float = Field(default=0.023, ge=0, description="Waterfall threshold m (linear).")
    max_retransmissions: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Retransmissions after a failed attempt; then the update is lost.",
    )


class AccessConfig(Section):
    """Uplink multiple access and message framing."""

    scheme: Literal["fdma", "tdma"] = Field(
        default="fdma",
        description="'fdma': the band is split among the UEs uploading in the round, all at once; "
        "'tdma': each UE gets the whole band in turn, in order of arrival at the channel.",
    )
    bandwidth_hz: float = Field(
        default=20e6, gt=0, description="Total bandwidth W in Hz (uplink and downlink each)."
    )
    shares: list[float] | None = Field(
        default=None,
        description="FDMA weights, one per UE: a UE gets W * share / (sum of shares of the UEs uploading "
        "in the round). Equal split if unset.",
    )
    gap_db: float = Field(
        default=0.0, ge=0, le=30, description="SNR gap to capacity in dB (0: Shannon capacity)."
    )
    header_bytes: int = Field(
        default=40, ge=0, description="Fixed header bytes added to every message on the air."
    )
    packet_errors: PacketErrorConfig = Field(
        default_factory=PacketErrorConfig, description="Packet errors and retransmissions."
    )

    @field_validator("shares")
    @classmethod
    def _positive_shares(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if not v:
                raise ValueError("access.shares is empty; leave it unset for an equal split")
            bad = [i for i, s in enumerate(v) if not (s > 0 and math.isfinite(s))]
            if bad:
                raise ValueError(f"access.shares must be positive and finite; bad entries at {bad}")
        return v


class DownlinkConfig(Section):
    """How the BS sends the global model."""

    mode: Literal["broadcast", "unicast"] = Field(
        default="broadcast",
        description="'broadcast': one message on the full band at the rate of the worst receiving UE; "
        "'unicast': one message per UE on the full band, one after another (by UE id).",
    )


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


class PolicyConfig(Section):
    """When the BS closes a round and aggregates."""

    name: str = Field(
        default="sync",
        description="'sync' (wait for every selected UE), 'deadline' (deadline_s), 'first_k' (k), or "
        "'async' (buffered asynchronous, buffer_k and concurrency).",
    )
    deadline_s: float | None = Field(
        default=None, gt=0, description="Round deadline in s ('deadline' policy)."
    )
    k: int | None = Field(default=None, ge=1, description="Arrivals that close the round ('first_k' policy).")
    buffer_k: int = Field(default=10, ge=1, description="Arrivals per aggregation ('async' policy).")
    concurrency: int | None = Field(
        default=None, ge=1, description="UEs training at once ('async'); clients_per_round if unset."
    )

    @field_validator("name")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        if v not in POLICIES:
            raise ValueError(f"unknown policy {v!r}; choose one of {sorted(POLICIES)}")
        return v

    @model_validator(mode="after")
    def _required(self) -> PolicyConfig:
        needs = POLICIES[self.name].requires
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"policy {self.name!r} needs policy.{missing[0]} to be set")
        return self


class EventTriggerConfig(Section):
    """Event-triggered uploads: a UE uploads only when its update is significant."""

    enabled: bool = Field(default=False, description="Skip uploads whose update norm is below the threshold.")
    threshold: float = Field(default=0.01, ge=0, description="Threshold on ||w_local - w_last_uploaded||.")
    mode: Literal["absolute", "relative"] = Field(
        default="relative",
        description="'absolute': upload if the norm exceeds threshold; 'relative': if it exceeds "
        "threshold * ||w_last_uploaded||.",
    )
    on_skip: Literal["reuse", "omit"] = Field(
        default="reuse",
        description="On a skip the BS reuses the UE's last update ('reuse') or leaves it out.",
    )
    skip_message_bytes: int = Field(
        default=1, ge=0, description="Payload bytes of the short 'no update' message (header added on air)."
    )


class WirelessConfig(Section):
    """The wireless cell, the devices and the simulated clock."""

    cell: CellConfig = Field(default_factory=CellConfig, description="Cell geometry and radio.")
    access: AccessConfig = Field(default_factory=AccessConfig, description="Uplink access and framing.")
    downlink: DownlinkConfig = Field(default_factory=DownlinkConfig, description="Downlink of the model.")
    devices: DevicesConfig = Field(default_factory=DevicesConfig, description="Device compute and energy.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Round-closing policy.")
    event_trigger: EventTriggerConfig = Field(
        default_factory=EventTriggerConfig, description="Event-triggered uploads."
    )

    @model_validator(mode="after")
    def _cross(self) -> WirelessConfig:
        if self.access.shares is not None and self.policy.name == "async":
            raise ValueError(
                "access.shares cannot be used with policy 'async' (its FDMA band is split equally among "
                "the concurrency slots); remove access.shares or choose another policy"
            )
        if self.access.shares is not None and self.access.scheme == "tdma":
            raise ValueError("access.shares are FDMA weights; remove them or set access.scheme: fdma")
        return self
