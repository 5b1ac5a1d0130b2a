"""Devices: measured training FLOPs, per-UE device profiles, compute time and energy."""

from fedwave.devices.flops import training_flops_per_sample
from fedwave.devices.profiles import PROFILE_SAMPLERS, DeviceProfile, radio_energy_j, sample_profiles

__all__ = [
    "PROFILE_SAMPLERS",
    "DeviceProfile",
    "radio_energy_j",
    "sample_profiles",
    "training_flops_per_sample",
]
