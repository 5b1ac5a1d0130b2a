"""The round's FDMA allocation on the clock: from the selected UEs' results to bands and CPU frequencies.

Builds the :class:`~fedwave.channel.allocation.AllocationProblem` of a synchronous round from what the
BS knows when it fixes the uplink bands (after the local updates, before the broadcast): each
uploading UE's message bits (payload + header), its mean uplink gain and the fading model (the
allocator plans with the ergodic rate b E[log2(1 + SNR x)] over the fading power x, what an upload
spanning many coherence blocks gets: the fading of those blocks is not known in advance), its download end
(the broadcast's duration, or its turn among the unicasts, by UE id) and its compute time from its
device profile; ``min_energy``'s deadline is ``policy.deadline_s`` less ``access.allocation_margin`` of
it (slack for the fading). Then it calls the solver named by ``wireless.access.allocation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedwave.channel.allocation import AllocationProblem, fading_quadrature, get_allocation
from fedwave.channel.link import message_bits
from fedwave.channel.units import db_to_linear
from fedwave.rng import Key
from fedwave.sim.protocol import LocalResult

if TYPE_CHECKING:
    from fedwave.sim.clock import Clock


@dataclass(frozen=True)
class UplinkPlan:
    """Bands (Hz) and CPU frequencies (Hz; absent: the profile's) of the uploading UEs, by UE id, and
    whether ``min_energy`` fell back to ``min_latency`` because the deadline was infeasible."""

    bandwidth_hz: dict[int, float]
    cpu_hz: dict[int, float]
    fallback: bool = False


def download_end_s(
    clock: Clock, ues: Sequence[int], nbytes: int, keys: Sequence[tuple[Key, ...]], t_s: float = 0.0
) -> list[float]:
    """Seconds from the round start until each of ``ues`` has the model: the broadcast's duration for
    all, or with unicast the sum of the unicasts up to the UE's own (they are served by UE id)."""
    if clock.cfg.downlink.mode == "unicast":
        order = sorted(range(len(ues)), key=lambda i: ues[i])
        ends = [0.0] * len(ues)
        t = 0.0
        for i in order:
            t += clock.downlink_time_s([ues[i]], nbytes, [keys[i]], t_s + t)
            ends[i] = t
        return ends
    return [clock.downlink_time_s(list(ues), nbytes, list(keys), t_s)] * len(ues)


def plan_uplink(
    clock: Clock,
    ues: Sequence[int],
    results: Sequence[LocalResult],
    keys: Sequence[tuple[Key, ...]],
    downlink_bytes: int,
    t_s: float = 0.0,
) -> UplinkPlan:
    """The allocation ``wireless.access.allocation`` gives the UEs of ``ues`` that upload an update in a
    round starting at ``t_s`` (s; the mean SNRs and download times are those at that time)."""
    cfg = clock.cfg
    up = [i for i, r in enumerate(results) if not (r.skip or r.silent)]
    if not up:
        return UplinkPlan({}, {})
    ids = [int(ues[i]) for i in up]
    dl_all = download_end_s(clock, ues, downlink_bytes, keys, t_s)
    profiles = [clock.profiles[u] for u in ids]
    samples = [int(results[i].samples_processed) for i in up]
    fps = clock.flops_per_sample
    w = cfg.access.bandwidth_hz
    gamma = float(db_to_linear(cfg.access.gap_db))
    cycles = None
    cpu_max = kappa = None
    if cfg.devices.model == "cycles":
        cycles = np.array([p.cycles(fps, d) for p, d in zip(profiles, samples)], dtype=float)
        cpu_max = np.array([p.cpu_hz for p in profiles], dtype=float)
        kappa = np.array([p.kappa for p in profiles], dtype=float)
    problem = AllocationProblem(
        bandwidth_hz=w,
        bits=np.array(
            [max(1, message_bits(results[i].payload_bytes, cfg.access.header_bytes)) for i in up], dtype=float
        ),
        snr_hz=np.array([clock.mean_snr_up(u, w, t_s) * w / gamma for u in ids], dtype=float),
        power_w=np.array([clock.cell.ue_power_w[u] for u in ids], dtype=float),
        download_s=np.array([dl_all[i] for i in up], dtype=float),
        compute_s=np.array([p.compute_time_s(fps, d) for p, d in zip(profiles, samples)], dtype=float),
        cycles=cycles,
        cpu_max_hz=cpu_max,
        kappa=kappa,
        deadline_s=None
        if cfg.policy.deadline_s is None
        else cfg.policy.deadline_s * (1.0 - cfg.access.allocation_margin),
        fading=fading_quadrature(cfg.cell.fading.model, cfg.cell.fading.rician_k),
    )
    alloc = get_allocation(cfg.access.allocation)(problem)
    cpu = {} if alloc.cpu_hz is None else dict(zip(ids, alloc.cpu_hz.tolist()))
    return UplinkPlan(dict(zip(ids, alloc.bandwidth_hz.tolist())), cpu, alloc.fallback)
