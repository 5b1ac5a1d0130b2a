"""A per-UE description of the cell (for ``fedwave cell``): distance, path loss, mean SNR, rate, times."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedwave.channel.aircomp import analog_airtime_s
from fedwave.channel.link import airtime_s, message_bits, shannon_rate_bps
from fedwave.channel.units import linear_to_db
from fedwave.sim.clock import Clock


@dataclass(frozen=True)
class CellRow:
    """One UE of the cell, fading averaged out.

    Attributes:
        ue: UE id.
        distance_m: distance to the BS (m).
        pathloss_db: large-scale path loss (dB).
        shadowing_db: shadowing gain (dB).
        mean_snr_db: uplink SNR on ``bandwidth_hz`` with E|h|^2 = 1 (dB).
        bandwidth_hz: uplink bandwidth (Hz): the FDMA share, or the whole band under TDMA and AirComp.
        rate_bps: uplink rate at the mean SNR (bit/s); NaN under AirComp (analog).
        upload_s: airtime of one message of ``payload_bytes`` plus header at that rate, one attempt (s);
            under TDMA the wait for the channel is not included; under AirComp the analog phase.
        compute_s: compute time of the UE's local update (s).
        device: the device class name.
    """

    ue: int
    distance_m: float
    pathloss_db: float
    shadowing_db: float
    mean_snr_db: float
    bandwidth_hz: float
    rate_bps: float
    upload_s: float
    compute_s: float
    device: str


def describe_cell(
    clock: Clock,
    payload_bytes: int,
    samples_per_ue: Sequence[int],
    *,
    uploaders: int | None = None,
    entries: int | None = None,
) -> list[CellRow]:
    """Describe every UE of ``clock``'s cell for an update of ``payload_bytes`` bytes.

    Args:
        clock: the clock whose cell and devices to describe.
        payload_bytes: bytes of one encoded update (header added from the config).
        samples_per_ue: samples processed in one local update, per UE (epochs x local samples).
        uploaders: UEs sharing the FDMA band at once (default: every UE of the cell).
        entries: real entries of one update; needed under ``access.scheme: aircomp``, where every UE
            sends on the whole band at once and the upload is the analog phase, ``ceil(entries / 2) / W``
            seconds (the rate column is then NaN: nothing is sent at a Shannon rate).
    """
    n = clock.num_ues
    if len(samples_per_ue) != n:
        raise ValueError(f"samples_per_ue has {len(samples_per_ue)} entries but the cell has {n} UEs")
    access = clock.cfg.access
    k = n if uploaders is None else int(uploaders)
    if not 1 <= k <= n:
        raise ValueError(f"uploaders must be between 1 and {n}, got {uploaders}")
    if access.scheme == "aircomp" and entries is None:
        raise ValueError("describe_cell needs the update's entries under access.scheme aircomp")
    if access.scheme in ("tdma", "aircomp"):
        band = np.full(n, access.bandwidth_hz)
    elif access.shares is not None:
        s = np.asarray(access.shares, dtype=float)
        band = access.bandwidth_hz * s / s.sum() * n / k
    else:
        band = np.full(n, access.bandwidth_hz / k)
    snr = clock.cell.mean_snr(band)
    rate = shannon_rate_bps(band, snr, access.gap_db)
    bits = message_bits(payload_bytes, access.header_bytes)
    if access.scheme == "aircomp":
        rate = np.full(n, math.nan)
        upload = np.full(n, analog_airtime_s(int(entries or 0), access.bandwidth_hz))
    else:
        upload = np.array([airtime_s(bits, float(r)) for r in rate])
    cell = clock.cell
    return [
        CellRow(
            ue=i,
            distance_m=float(cell.distance_m[i]),
            pathloss_db=float(cell.pathloss_db[i]),
            shadowing_db=float(cell.shadowing_db[i]),
            mean_snr_db=float(linear_to_db(snr[i])),
            bandwidth_hz=float(band[i]),
            rate_bps=float(rate[i]),
            upload_s=float(upload[i]),
            compute_s=clock.profiles[i].compute_time_s(clock.flops_per_sample, int(samples_per_ue[i])),
            device=clock.profiles[i].name,
        )
        for i in range(n)
    ]


def format_cell(rows: Sequence[CellRow]) -> str:
    """A plain-text table of ``rows`` with a summary line (medians and the mean upload/compute ratio)."""
    head = (
        f"{'UE':>5} {'dist m':>8} {'PL dB':>7} {'shadow dB':>9} {'SNR dB':>7} {'band Hz':>10} "
        f"{'rate bit/s':>11} {'upload s':>9} {'compute s':>9}  device"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.ue:>5} {r.distance_m:>8.1f} {r.pathloss_db:>7.1f} {r.shadowing_db:>9.1f} "
            f"{r.mean_snr_db:>7.1f} {r.bandwidth_hz:>10.3g} {r.rate_bps:>11.4g} {r.upload_s:>9.4g} "
            f"{r.compute_s:>9.4g}  {r.device}"
        )
    if rows:
        up = np.array([r.upload_s for r in rows])
        cp = np.array([r.compute_s for r in rows])
        ratio = float(up.mean() / cp.mean()) if cp.mean() > 0 else math.inf
        lines.append("-" * len(head))
        lines.append(
            f"median upload {np.median(up):.4g} s, median compute {np.median(cp):.4g} s, "
            f"mean upload / mean compute = {ratio:.3g}"
        )
    return "\n".join(lines)
