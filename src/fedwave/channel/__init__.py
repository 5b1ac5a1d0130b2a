"""The radio: geometry, path loss, shadowing and fading, rates and packet errors.

Pure functions of their arguments and an explicit NumPy generator; :class:`Cell` gathers the per-UE state
of one run.
"""

from fedwave.channel.cell import Cell
from fedwave.channel.fading import FADING_MODELS, sample_fading_power, sample_shadowing_db
from fedwave.channel.geometry import distances_m, sample_positions
from fedwave.channel.link import (
    airtime_s,
    message_bits,
    packet_error_probability,
    sample_attempts,
    shannon_rate_bps,
    snr_linear,
)
from fedwave.channel.pathloss import PATHLOSS_MODELS, pathloss_db, register_pathloss
from fedwave.channel.units import (
    db_to_linear,
    dbm_to_watt,
    linear_to_db,
    noise_power_w,
    noise_psd_w_per_hz,
    watt_to_dbm,
)

__all__ = [
    "FADING_MODELS",
    "PATHLOSS_MODELS",
    "Cell",
    "airtime_s",
    "db_to_linear",
    "dbm_to_watt",
    "distances_m",
    "linear_to_db",
    "message_bits",
    "noise_power_w",
    "noise_psd_w_per_hz",
    "packet_error_probability",
    "pathloss_db",
    "register_pathloss",
    "sample_attempts",
    "sample_fading_power",
    "sample_positions",
    "sample_shadowing_db",
    "shannon_rate_bps",
    "snr_linear",
    "watt_to_dbm",
]
