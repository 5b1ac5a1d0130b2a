"""Typed configuration of the simulated clock, and the wireless section that gathers the radio parts.

``WirelessConfig`` holds the cell and access (:mod:`fedwave.channel.config`), the devices
(:mod:`fedwave.devices.config`), the round policy and event-triggered uploads (here). Each family owns
its config; this module only composes them and checks what crosses families.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fedwave.channel.config import (
    AccessConfig,
    CellConfig,
    DownlinkConfig,
    FadingConfig,
    PacketErrorConfig,
    PathLossConfig,
)
from fedwave.configbase import Section
from fedwave.devices.config import DeviceClassConfig, DevicesConfig, SpeedDistributionConfig
from fedwave.sim.policies import policy_class

__all__ = [
    "AccessConfig",
    "CellConfig",
    "DeviceClassConfig",
    "DevicesConfig",
    "DownlinkConfig",
    "EventTriggerConfig",
    "FadingConfig",
    "PacketErrorConfig",
    "PathLossConfig",
    "PolicyConfig",
    "SpeedDistributionConfig",
    "WirelessConfig",
]


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
        policy_class(v)  # ConfigError (a ValueError) naming the valid policies
        return v

    @model_validator(mode="after")
    def _required(self) -> PolicyConfig:
        needs = policy_class(self.name).requires
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"policy {self.name!r} needs wireless.policy.{missing[0]} to be set")
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
    clock: Literal["auto", "simpy"] = Field(
        "auto",
        description=(
            "How rounds are timed. auto: rounds where nothing queues (policy sync, deadline or first_k; "
            "FDMA with an equal or shares split; broadcast downlink; a static cell with i.i.d. fading) "
            "with numpy over the UEs, the rest with SimPy; simpy: every round with SimPy. Both give the "
            "same timelines."
        ),
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
        problems = _aircomp_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        self._check_allocation()
        if self.access.packet_errors.enabled and self.cell.fading.block == "round":
            raise ValueError(
                "access.packet_errors (the waterfall rate, already averaged over the fading) cannot be "
                "combined with cell.fading.block 'round', whose outage rule already turns deep fades into "
                "failed attempts: that would count fading twice. Use fading.block 'coherence' with packet "
                "errors, or 'round' with its outage rule (cell.fading.outage_snr_db)"
            )
        return self

    def _check_allocation(self) -> None:
        name = self.access.allocation
        if name == "equal":
            return
        if self.access.scheme != "fdma":
            raise ValueError(
                f"access.allocation {name!r} splits an FDMA band; access.scheme {self.access.scheme!r} gives "
                "every UE the whole band. Set access.scheme: fdma or access.allocation: equal"
            )
        if self.access.shares is not None:
            raise ValueError(f"access.shares are weights of the 'equal' split; remove them to use {name!r}")
        if self.policy.name == "async":
            raise ValueError(
                f"access.allocation {name!r} plans a synchronous round; policy 'async' splits the band "
                "equally among its slots. Use access.allocation: equal or another policy"
            )
        if name == "min_energy" and self.policy.name != "deadline":
            raise ValueError(
                "access.allocation 'min_energy' minimises energy under the round deadline: set "
                "wireless.policy.name: deadline and wireless.policy.deadline_s"
            )


#: Round policies under which the selected UEs can transmit together (over-the-air computation).
AIRCOMP_POLICIES = ("sync", "deadline")


def _aircomp_problems(cfg: WirelessConfig) -> list[str]:
    """What cannot go with ``access.scheme: aircomp`` (all UEs transmit one analog sum at once)."""
    if cfg.access.scheme != "aircomp":
        return []
    problems = []
    if cfg.policy.name not in AIRCOMP_POLICIES:
        problems.append(
            f"access.scheme 'aircomp' sends one analog sum of the UEs that transmit together; policy "
            f"{cfg.policy.name!r} aggregates UEs at different times. Set policy.name to 'sync' or "
            "'deadline' (or choose access.scheme fdma/tdma)"
        )
    if cfg.access.shares is not None:
        problems.append(
            "access.shares are FDMA weights; 'aircomp' gives every UE the whole band: remove access.shares"
        )
    if cfg.event_trigger.enabled:
        problems.append(
            "event_trigger with access.scheme 'aircomp': a skipped UE cannot be reused or left out of an "
            "analog sum it does not transmit into; set event_trigger.enabled=false"
        )
    if cfg.access.packet_errors.enabled:
        problems.append(
            "access.packet_errors with access.scheme 'aircomp': the analog sum is never retransmitted, its "
            "error is the received noise; set access.packet_errors.enabled=false"
        )
    if cfg.cell.fading.process != "iid" or cfg.cell.mobility.model != "static":
        problems.append(
            "access.scheme 'aircomp' draws each UE's channel once per round from a static cell; it does not "
            "model a time-varying channel yet: set cell.fading.process=iid and cell.mobility=static"
        )
    return problems
