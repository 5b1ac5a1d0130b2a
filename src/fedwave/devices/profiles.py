"""Device profiles: how fast each UE trains and what the training costs in energy.

Two models of a local update that processes D samples:

- ``flops``: time = F D / s (F FLOPs per sample, s FLOP/s), energy = e F D (e joules per FLOP).
- ``cycles``: time = C D / f (C CPU cycles per sample, f Hz), energy = kappa C D f^2.

Profiles are drawn per UE by a sampler chosen by name (``devices.profile``): ``equal``, ``distribution``
or ``classes``; draws come from the stream ``(seed, "devices")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fedwave.devices.config import DevicesConfig


@dataclass(frozen=True)
class DeviceProfile:
    """One UE's device.

    Attributes:
        name: class name (``"default"`` unless from the classes profile).
        model: ``"flops"`` or ``"cycles"``.
        flops_per_s: effective training throughput in FLOP/s (flops model).
        cpu_hz: CPU frequency f in Hz (cycles model).
        cycles_per_sample: C in cycles per sample; ``None``: FLOPs per sample / ``flops_per_cycle``.
        flops_per_cycle: FLOPs per cycle, to derive C from measured FLOPs.
        kappa: effective switched capacitance (cycles energy), in J / (cycle Hz^2).
        joules_per_flop: energy per FLOP in J (flops energy).
    """

    name: str
    model: str
    flops_per_s: float
    cpu_hz: float
    cycles_per_sample: float | None
    flops_per_cycle: float
    kappa: float
    joules_per_flop: float

    def cycles(self, flops_per_sample: float, samples: int) -> float:
        """CPU cycles C D of a local update of ``samples`` samples."""
        c = (
            self.cycles_per_sample
            if self.cycles_per_sample is not None
            else flops_per_sample / self.flops_per_cycle
        )
        return c * samples

    def compute_time_s(self, flops_per_sample: float, samples: int) -> float:
        """Seconds of a local update: F D / flops_per_s (flops model) or C D / f (cycles model)."""
        if self.model == "cycles":
            return self.cycles(flops_per_sample, samples) / self.cpu_hz
        return flops_per_sample * samples / self.flops_per_s

    def compute_energy_j(self, flops_per_sample: float, samples: int) -> float:
        """Joules of a local update: joules_per_flop F D (flops model) or kappa C D f^2 (cycles model)."""
        if self.model == "cycles":
            return self.kappa * self.cycles(flops_per_sample, samples) * self.cpu_hz**2
        return self.joules_per_flop * flops_per_sample * samples


def radio_energy_j(power_w: float, airtime_s: float) -> float:
    """Transmission energy in J: P (W) times the airtime of all attempts (s)."""
    return power_w * airtime_s


def _base(cfg: DevicesConfig) -> DeviceProfile:
    return DeviceProfile(
        name="default",
        model=cfg.model,
        flops_per_s=cfg.flops_per_s,
        cpu_hz=cfg.cpu_hz,
        cycles_per_sample=cfg.cycles_per_sample,
        flops_per_cycle=cfg.flops_per_cycle,
        kappa=cfg.kappa,
        joules_per_flop=cfg.joules_per_flop,
    )


def _equal(cfg: DevicesConfig, num_ues: int, rng: np.random.Generator) -> list[DeviceProfile]:
    return [_base(cfg)] * num_ues


def _distribution(cfg: DevicesConfig, num_ues: int, rng: np.random.Generator) -> list[DeviceProfile]:
    dist = cfg.distribution
    if dist.kind == "lognormal":
        speeds = dist.median * np.exp(dist.sigma * rng.standard_normal(num_ues))
    else:
        assert dist.low is not None and dist.high is not None
        speeds = rng.uniform(dist.low, dist.high, num_ues)
    base = _base(cfg)
    if cfg.model == "cycles":
        return [replace(base, cpu_hz=float(s)) for s in speeds]
    return [replace(base, flops_per_s=float(s)) for s in speeds]


def _classes(cfg: DevicesConfig, num_ues: int, rng: np.random.Generator) -> list[DeviceProfile]:
    # Exact counts by largest remainder, then a random assignment of UEs to the counted slots.
    shares = np.array([c.share for c in cfg.classes], dtype=float)
    raw = shares / shares.sum() * num_ues
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: num_ues - int(counts.sum())]] += 1
    slots = np.repeat(np.arange(len(cfg.classes)), counts)
    slots = slots[rng.permutation(num_ues)]
    base = _base(cfg)
    profiles = [
        replace(
            base,
            name=c.name,
            flops_per_s=c.flops_per_s,
            cpu_hz=c.cpu_hz,
            cycles_per_sample=c.cycles_per_sample
            if c.cycles_per_sample is not None
            else base.cycles_per_sample,
            kappa=c.kappa if c.kappa is not None else base.kappa,
            joules_per_flop=c.joules_per_flop if c.joules_per_flop is not None else base.joules_per_flop,
        )
        for c in cfg.classes
    ]
    return [profiles[int(i)] for i in slots]


ProfileSampler = Callable[["DevicesConfig", int, np.random.Generator], list[DeviceProfile]]

PROFILE_SAMPLERS: dict[str, ProfileSampler] = {
    "equal": _equal,
    "distribution": _distribution,
    "classes": _classes,
}


def sample_profiles(cfg: DevicesConfig, num_ues: int, rng: np.random.Generator) -> list[DeviceProfile]:
    """One :class:`DeviceProfile` per UE (index = UE id), drawn by the ``cfg.profile`` sampler."""
    return PROFILE_SAMPLERS[cfg.profile](cfg, num_ues, rng)
