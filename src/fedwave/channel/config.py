"""Typed configuration of the radio: the cell, its fading, uplink access, packet errors, the downlink.

Defaults are the scenario defaults of the wireless spec: R = 500 m, W = 20 MHz FDMA, P = 23 dBm,
N0 = -174 dBm/Hz, 8 dB shadowing, Rayleigh fading redrawn every coherence block (3 km/h at 2 GHz).
Lists whose length must match the number of UEs (``cell.positions_m``, a per-UE ``cell.ue_power_dbm``,
``access.shares``) are checked against ``fl.num_ues`` by the run's config and again when the clock is
built.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fedwave.channel.pathloss import PATHLOSS_MODELS, SPEED_OF_LIGHT_M_S
from fedwave.configbase import Section

#: The usual rule of thumb for the coherence time under Clarke's model: T_c = sqrt(9 / (16 pi)) / f_D
#: ~= 0.423 / f_D (the geometric mean of 9 / (16 pi f_D) and 1 / f_D; Rappaport), f_D the Doppler (Hz).
CLARKE_COHERENCE_FACTOR = math.sqrt(9.0 / (16.0 * math.pi))


class PathLossConfig(Section):
    """Large-scale path loss."""

    model: str = Field(
        default="tr36814",
        description="Path-loss model: 'tr36814' (128.1 + 37.6 log10(d/1 km) dB), 'free_space' (Friis at "
        "cell.carrier_hz) or 'power_law' (reference_loss_db + 10 exponent log10(d/reference_distance_m)).",
    )
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


class FadingConfig(Section):
    """Small-scale fading |h|^2 (mean 1) and how long one draw holds.

    ``block: coherence`` (default): every UE's channel is redrawn every coherence block; an upload
    lasting several blocks sends, in each block, what the block's instantaneous Shannon rate carries
    (the rate is adapted per block), so its airtime averages the fading. ``block: round``: one draw is
    held for a whole transmission attempt; an attempt whose instantaneous SNR is below ``outage_snr_db``
    is in outage: it is sent at the rate of that threshold SNR, fails, and is retried with a new draw.
    """

    model: Literal["rayleigh", "rician", "none"] = Field(
        default="rayleigh", description="'rayleigh' (|h|^2 ~ Exp(1)), 'rician' (factor rician_k) or 'none'."
    )
    rician_k: float = Field(
        default=3.0, ge=0, description="Rician factor K (linear LOS/scatter power ratio)."
    )
    block: Literal["coherence", "round"] = Field(
        default="coherence",
        description="'coherence': redraw every coherence block, rate adapted per block; 'round': one draw "
        "per transmission attempt, with the outage rule.",
    )
    coherence_time_s: float | None = Field(
        default=None,
        gt=0,
        description="Coherence block length in s; null: 0.423 / f_D with the Doppler f_D = v f_c / c "
        "from ue_speed_kmh and cell.carrier_hz (Clarke). Under process gauss_markov this is the AR(1) step "
        "T_b (the default gives the correlation J0(2 pi 0.423) = -0.12 per block).",
    )
    ue_speed_kmh: float = Field(
        default=3.0,
        gt=0,
        le=500,
        description="UE speed in km/h: the Doppler f_D (coherence time when coherence_time_s is null, the "
        "gauss_markov correlation) and the walking speed of cell.mobility.",
    )
    outage_snr_db: float = Field(
        default=0.0,
        ge=-30,
        le=60,
        description="'round' blocks: instantaneous SNR (dB) below which an attempt fails (sent at this "
        "SNR's rate) and is retried with a new draw.",
    )
    process: Literal["iid", "gauss_markov"] = Field(
        default="iid",
        description="How the fading of consecutive coherence blocks relates: 'iid' (independent draws per "
        "block of each link) or 'gauss_markov' (per UE, h evolves as an AR(1) process over blocks of "
        "absolute time with correlation J0(2 pi f_D T_b) per block, across rounds too; needs block: "
        "coherence; set coherence_time_s below 0.423 / f_D for a strongly correlated process).",
    )

    def doppler_hz(self, carrier_hz: float) -> float:
        """The maximum Doppler shift f_D = v f_c / c in Hz of a UE at ``ue_speed_kmh`` (carrier in Hz)."""
        return self.ue_speed_kmh / 3.6 * carrier_hz / SPEED_OF_LIGHT_M_S

    def coherence_s(self, carrier_hz: float) -> float:
        """The coherence block length in s: ``coherence_time_s``, or 0.423 / f_D at ``carrier_hz`` Hz."""
        if self.coherence_time_s is not None:
            return self.coherence_time_s
        return CLARKE_COHERENCE_FACTOR / self.doppler_hz(carrier_hz)

    @model_validator(mode="after")
    def _process_needs_blocks(self) -> FadingConfig:
        if self.process == "gauss_markov" and self.block != "coherence":
            raise ValueError(
                "fading.process 'gauss_markov' evolves the fading over coherence blocks: set "
                "fading.block to 'coherence' (or fading.process to 'iid')"
            )
        return self


class MobilityConfig(Section):
    """How the UEs move. Their speed is ``cell.fading.ue_speed_kmh`` (the one speed of the config: it
    also gives the Doppler)."""

    model: Literal["static", "random_waypoint"] = Field(
        default="static",
        description="'static' (UEs stay where they were placed) or 'random_waypoint' (each UE walks "
        "straight to a uniformly drawn waypoint in the cell at cell.fading.ue_speed_kmh, pauses pause_s, "
        "and goes on; path loss and shadowing follow it).",
    )
    pause_s: float = Field(
        default=0.0, ge=0, le=1e7, description="Pause at each waypoint in s (random_waypoint)."
    )
    decorrelation_m: float = Field(
        default=50.0,
        gt=0,
        le=1e6,
        description="Shadowing decorrelation distance in m (Gudmundson): shadowing values d m apart along "
        "a UE's path have correlation exp(-d / decorrelation_m).",
    )


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
    carrier_hz: float = Field(
        default=2e9, gt=0, description="Carrier frequency in Hz (free-space path loss, Doppler)."
    )
    pathloss: PathLossConfig = Field(default_factory=PathLossConfig, description="Large-scale path loss.")
    shadowing_db: float = Field(
        default=8.0, ge=0, le=30, description="Log-normal shadowing sigma in dB, drawn once per UE."
    )
    fading: FadingConfig = Field(
        default_factory=FadingConfig,
        description="Small-scale fading; a plain name (rayleigh, rician, none) sets fading.model.",
    )
    mobility: MobilityConfig = Field(
        default_factory=MobilityConfig,
        description="How UEs move; a plain name (static, random_waypoint) sets mobility.model.",
    )
    noise_psd_dbm_hz: float = Field(default=-174.0, description="Noise power spectral density N0 in dBm/Hz.")
    noise_figure_db: float = Field(
        default=0.0, ge=0, le=30, description="Receiver noise figure in dB (added to N0)."
    )
    ue_power_dbm: float | list[float] = Field(
        default=23.0, description="UE transmit power in dBm: one value for all UEs or a list with one per UE."
    )
    bs_power_dbm: float = Field(
        default=43.0, ge=-50, le=80, description="BS transmit power in dBm (downlink), in [-50, 80]."
    )

    @field_validator("fading", mode="before")
    @classmethod
    def _fading_shorthand(cls, v: Any) -> Any:
        return {"model": v} if isinstance(v, str) else v

    @field_validator("mobility", mode="before")
    @classmethod
    def _mobility_shorthand(cls, v: Any) -> Any:
        return {"model": v} if isinstance(v, str) else v

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
        if self.mobility.model == "random_waypoint" and not self.d_min_m < 0.5 * self.radius_m:
            raise ValueError(
                f"cell.mobility 'random_waypoint' needs cell.d_min_m ({self.d_min_m} m) below half of "
                f"cell.radius_m ({self.radius_m} m), so that straight paths between waypoints can avoid "
                "the BS; lower d_min_m or raise radius_m"
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
    """Packet errors of the uplink, averaged over the fading (used with coherence blocks only)."""

    enabled: bool = Field(
        default=False,
        description="Each attempt fails with q = 1 - exp(-m N0 b / (P g)), g the MEAN gain (path loss and "
        "shadowing: the formula already averages Rayleigh fading).",
    )
    waterfall_threshold_db: float = Field(
        default=0.023,
        ge=-60,
        le=80,
        description="Waterfall threshold m in dB (0.023 dB as in Chen et al. 2021); linear m = 10^(m_dB/10).",
    )


class AirCompConfig(Section):
    """Over-the-air computation (``access.scheme: aircomp``, :mod:`fedwave.channel.aircomp`).

    The UEs that take part send a few digital scalars (FDMA-split control messages), then all transmit
    their pre-processed updates at once, in analog, on the whole band, each inverting its own channel
    (truncated channel inversion, Zhu, Wang and Huang 2019); the BS receives the sum plus noise.
    """

    mode: Literal["analog", "one_bit"] = Field(
        default="analog",
        description="'analog': the normalised update entries, two real entries per complex symbol; "
        "'one_bit': their signs (QPSK: two signs per symbol) and a majority vote at the BS (Zhu et al. "
        "2020, OBDA).",
    )
    truncation_fading_power: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="Truncation threshold g_th on the UE's small-scale fading power |h|^2 (linear, "
        "dimensionless, mean 1): a UE whose draw this round is below it stays silent. 0: only a draw of "
        "exactly 0 is truncated.",
    )
    control_bytes: int = Field(
        default=12,
        ge=1,
        le=1024,
        description="Payload bytes of each UE's digital control message (sample count and the update's "
        "mean and mean square as float32: 12 B; one_bit sends count and mean |update|) and of the BS's "
        "feedback of the common mean and std (analog mode); the access header is added on the air.",
    )


class AccessConfig(Section):
    """Uplink multiple access, message framing and retransmissions."""

    scheme: Literal["fdma", "tdma", "aircomp"] = Field(
        default="fdma",
        description="'fdma': the band is split among the UEs uploading an update in the round, all at once; "
        "'tdma': each UE gets the whole band in turn, in order of arrival at the channel; 'aircomp': "
        "over-the-air computation, all UEs at once on the whole band (see access.aircomp).",
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
    max_retransmissions: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Retransmissions after a failed attempt (packet error or outage); then the update is "
        "lost.",
    )
    packet_errors: PacketErrorConfig = Field(
        default_factory=PacketErrorConfig, description="Packet errors and retransmissions."
    )
    aircomp: AirCompConfig = Field(
        default_factory=AirCompConfig, description="Over-the-air computation (scheme 'aircomp')."
    )
    allocation: str = Field(
        default="equal",
        description="FDMA band split among the round's uploading UEs: 'equal' (or by shares), "
        "'min_latency' (the split that ends the round earliest, given payloads, rates and compute times) "
        "or 'min_energy' (least UE energy with every UE done by wireless.policy.deadline_s; CPU "
        "frequencies too with devices.model cycles). The allocator plans with the ergodic rate (averaged "
        "over the fading model) on the mean gain.",
    )

    allocation_margin: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="'min_energy' plans every UE to finish by (1 - margin) * wireless.policy.deadline_s: "
        "the rest of the deadline is slack for the fading the plan averages out (0: none).",
    )

    @field_validator("allocation")
    @classmethod
    def _known_allocation(cls, v: str) -> str:
        from fedwave.channel.allocation import ALLOCATIONS

        if v not in ALLOCATIONS:
            raise ValueError(f"unknown allocation {v!r}; choose one of {', '.join(ALLOCATIONS)}")
        return v

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
