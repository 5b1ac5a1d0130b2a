"""The cell of one run: UE positions, path loss and shadowing, fixed for the run.

A :class:`Cell` is sampled once from the config and the run seed, from the streams
``(seed, "cell", "positions")`` and ``(seed, "cell", "shadowing")``. Small-scale fading is drawn by the
links (:mod:`fedwave.channel.blocks`) from streams keyed by (seed, round, UE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from fedwave.channel.fading import sample_fading_power, sample_shadowing_db
from fedwave.channel.geometry import distances_m, sample_positions
from fedwave.channel.link import shannon_rate_bps, snr_linear
from fedwave.channel.pathloss import pathloss_db
from fedwave.channel.units import db_to_linear, dbm_to_watt, noise_psd_w_per_hz
from fedwave.errors import ConfigError
from fedwave.rng import Key, numpy_generator

if TYPE_CHECKING:
    from fedwave.channel.config import CellConfig


@dataclass(frozen=True)
class Cell:
    """The large-scale state of every UE (index = UE id) and the radio constants of the cell.

    Attributes:
        positions_m: ``(N, 2)`` UE coordinates in m (BS at the origin).
        distance_m: UE-BS distances in m.
        pathloss_db: large-scale loss in dB (positive).
        shadowing_db: shadowing gain in dB (drawn N(0, sigma^2), fixed for the run).
        ue_power_w: UE transmit powers in W.
        bs_power_w: BS transmit power in W.
        noise_psd_w_hz: N0 in W/Hz, receiver noise figure included.
        fading: fading model name; ``rician_k`` its K factor (linear).
    """

    positions_m: NDArray[np.float64]
    distance_m: NDArray[np.float64]
    pathloss_db: NDArray[np.float64]
    shadowing_db: NDArray[np.float64]
    ue_power_w: NDArray[np.float64]
    bs_power_w: float
    noise_psd_w_hz: float
    fading: str
    rician_k: float

    @property
    def num_ues(self) -> int:
        """Number of UEs in the cell."""
        return int(self.distance_m.shape[0])

    @classmethod
    def sample(cls, cfg: CellConfig, num_ues: int, seed: int) -> Cell:
        """Place the UEs and draw their shadowing.

        Raises:
            ConfigError: a per-UE list (``cell.positions_m``, ``cell.ue_power_dbm``) has the wrong length.
        """
        if num_ues < 1:
            raise ConfigError(f"num_ues must be at least 1, got {num_ues}")
        if cfg.positions_m is not None:
            if len(cfg.positions_m) != num_ues:
                raise ConfigError(
                    f"cell.positions_m has {len(cfg.positions_m)} positions but there are {num_ues} UEs"
                )
            positions = np.asarray(cfg.positions_m, dtype=float).reshape(num_ues, 2)
        else:
            rng = numpy_generator(seed, "cell", "positions")
            positions = sample_positions(rng, num_ues, cfg.radius_m, cfg.d_min_m)
        if isinstance(cfg.ue_power_dbm, list):
            if len(cfg.ue_power_dbm) != num_ues:
                raise ConfigError(
                    f"cell.ue_power_dbm lists {len(cfg.ue_power_dbm)} powers but there are {num_ues} UEs"
                )
            power = dbm_to_watt(cfg.ue_power_dbm)
        else:
            power = np.full(num_ues, float(dbm_to_watt(cfg.ue_power_dbm)))
        d = distances_m(positions)
        shadow = sample_shadowing_db(numpy_generator(seed, "cell", "shadowing"), num_ues, cfg.shadowing_db)
        return cls(
            positions_m=positions,
            distance_m=d,
            pathloss_db=pathloss_db(cfg.pathloss.model, d, cfg.pathloss, cfg.carrier_hz),
            shadowing_db=shadow,
            ue_power_w=power,
            bs_power_w=float(dbm_to_watt(cfg.bs_power_dbm)),
            noise_psd_w_hz=noise_psd_w_per_hz(cfg.noise_psd_dbm_hz, cfg.noise_figure_db),
            fading=cfg.fading.model,
            rician_k=cfg.fading.rician_k,
        )

    def large_scale_gain(self) -> NDArray[np.float64]:
        """Linear gain without fading: 10^((shadowing_db - pathloss_db) / 10), per UE."""
        return db_to_linear(self.shadowing_db - self.pathloss_db)

    def fading_power(self, seed: int, *keys: Key) -> NDArray[np.float64]:
        """Fading power |h|^2 of every UE for one block, from the stream (seed, "fading", *keys).

        Rounds use ``keys = (round,)``; value i belongs to UE i.
        """
        return sample_fading_power(
            numpy_generator(seed, "fading", *keys), self.num_ues, self.fading, self.rician_k
        )

    def mean_snr(self, bandwidth_hz: NDArray[np.float64] | float) -> NDArray[np.float64]:
        """Uplink SNR (linear) per UE on ``bandwidth_hz`` Hz with the fading averaged out (E|h|^2 = 1)."""
        return snr_linear(self.ue_power_w, self.large_scale_gain(), self.noise_psd_w_hz, bandwidth_hz)

    def downlink_rate_bps(
        self, gain: NDArray[np.float64], bandwidth_hz: float, gap_db: float = 0.0
    ) -> NDArray[np.float64]:
        """Downlink rate in bit/s of each UE with linear channel gain ``gain`` on the full band (BS power)."""
        snr = snr_linear(self.bs_power_w, gain, self.noise_psd_w_hz, bandwidth_hz)
        return shannon_rate_bps(bandwidth_hz, snr, gap_db)
