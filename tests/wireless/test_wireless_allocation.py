"""FDMA allocation (``wireless.access.allocation``): the solvers against a generic optimiser, and the
allocation the clock plays out (min_latency never slower than equal, min_energy within the deadline)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import exp1

from fedwave.channel.allocation import (
    AllocationProblem,
    band_for_rate,
    equal,
    fading_quadrature,
    min_energy,
    min_latency,
    min_latency_finish_s,
    rate_bps,
    round_energy_j,
)
from fedwave.errors import ConfigError
from fedwave.sim import Clock, WirelessConfig

W = 20e6


def _instance(rng: np.random.Generator, cycles: bool = False, low_snr_db: float = -10) -> AllocationProblem:
    n = int(rng.integers(2, 8))
    fmax = rng.uniform(0.5e9, 2e9, n)
    cyc = rng.uniform(1e8, 1e9, n)
    return AllocationProblem(
        bandwidth_hz=W,
        bits=rng.uniform(1e5, 1e7, n),
        snr_hz=W * 10 ** rng.uniform(low_snr_db / 10, 3, n),
        power_w=rng.uniform(0.05, 0.2, n),
        download_s=np.full(n, rng.uniform(0.0, 0.5)),
        compute_s=cyc / fmax if cycles else rng.uniform(0.0, 2.0, n),
        cycles=cyc if cycles else None,
        cpu_max_hz=fmax if cycles else None,
        kappa=np.full(n, 1e-28) if cycles else None,
    )


def _finish(p: AllocationProblem, bands: np.ndarray) -> np.ndarray:
    return p.ready_s + p.bits / rate_bps(bands, p.snr_hz)


def test_band_for_rate_inverts_the_rate() -> None:
    rng = np.random.default_rng(0)
    s = W * 10 ** rng.uniform(-2, 4, 200)
    b = W * 10 ** rng.uniform(-3, 1, 200)
    r = rate_bps(b, s)
    assert np.allclose(band_for_rate(r, s), b, rtol=1e-10, atol=0)
    assert band_for_rate(np.array([s[0] / math.log(2)]), s[:1])[0] == math.inf  # beyond the limit
    assert band_for_rate(np.array([0.0]), s[:1])[0] == 0.0


def _generic_min_latency(p: AllocationProblem) -> float:
    """SLSQP on the epigraph form: minimise T s.t. a_i + L_i / r_i(b_i) <= T, sum b = W (scaled by W
    and the equal split's finish time); returns the latest finish time of its split, played out."""
    n = len(p.bits)
    t_eq = float(_finish(p, equal(p).bandwidth_hz).max())
    cons = [
        {"type": "eq", "fun": lambda x: x[:n].sum() - 1.0},
        {"type": "ineq", "fun": lambda x: x[n] - _finish(p, x[:n] * W) / t_eq},
    ]
    res = minimize(
        lambda x: x[n],
        np.r_[np.full(n, 1.0 / n), 1.0],
        method="SLSQP",
        constraints=cons,
        bounds=[(1e-9, 1.0)] * n + [(0.0, 2.0)],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return float(_finish(p, res.x[:n] / res.x[:n].sum() * W).max())


def test_min_latency_matches_a_generic_solver_on_100_instances() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        p = _instance(rng)
        bands = min_latency(p).bandwidth_hz
        assert bands.sum() == pytest.approx(W, rel=1e-12) and np.all(bands > 0)
        ours = float(_finish(p, bands).max())
        theirs = _generic_min_latency(p)
        assert abs(ours - theirs) <= 1e-6 * theirs
        assert ours <= theirs * (1 + 1e-12)
        assert ours <= float(_finish(p, equal(p).bandwidth_hz).max()) * (1 + 1e-12)
        assert np.ptp(_finish(p, bands)) <= 1e-9 * ours  # the optimum equalises the finish times


def _energy(p: AllocationProblem, bands: np.ndarray, cpu: np.ndarray) -> float:
    assert p.cycles is not None and p.kappa is not None
    return float(np.sum(p.power_w * p.bits / rate_bps(bands, p.snr_hz) + p.kappa * p.cycles * cpu**2))


def _generic_min_energy(p: AllocationProblem, scale: float) -> tuple[float, float]:
    """SLSQP over (b / W, f / f_max) with the deadline as constraints; (its energy, worst slack / D)."""
    n = len(p.bits)
    assert p.cycles is not None and p.cpu_max_hz is not None and p.deadline_s is not None
    fmax, cycles, deadline = p.cpu_max_hz, p.cycles, p.deadline_s

    def late(x: np.ndarray) -> np.ndarray:
        done = p.download_s + cycles / (x[n:] * fmax) + p.bits / rate_bps(x[:n] * W, p.snr_hz)
        return (deadline - done) / deadline

    res = minimize(
        lambda x: _energy(p, x[:n] * W, x[n:] * fmax) / scale,
        np.r_[min_latency(p).bandwidth_hz / W, np.ones(n)],
        method="SLSQP",
        constraints=[{"type": "eq", "fun": lambda x: x[:n].sum() - 1.0}, {"type": "ineq", "fun": late}],
        bounds=[(1e-9, 1.0)] * n + [(1e-6, 1.0)] * n,
        options={"ftol": 1e-15, "maxiter": 2000},
    )
    return float(res.fun) * scale, float(late(res.x).min())


def test_min_energy_matches_a_generic_solver_and_meets_the_deadline() -> None:
    rng = np.random.default_rng(2)
    for _ in range(40):
        p0 = _instance(rng, cycles=True, low_snr_db=0)
        deadline = min_latency_finish_s(p0) * rng.uniform(1.05, 2.0)
        p = AllocationProblem(**{**p0.__dict__, "deadline_s": deadline})
        a = min_energy(p)
        assert not a.fallback and a.cpu_hz is not None and p.cycles is not None
        assert a.bandwidth_hz.sum() == pytest.approx(W, rel=1e-12)
        assert np.all(a.cpu_hz <= p.cpu_max_hz)
        done = p.download_s + p.cycles / a.cpu_hz + p.bits / rate_bps(a.bandwidth_hz, p.snr_hz)
        assert np.all(done <= deadline)
        ours = _energy(p, a.bandwidth_hz, a.cpu_hz)
        assert ours == pytest.approx(round_energy_j(p, a), rel=1e-12)
        theirs, worst = _generic_min_energy(p, ours)
        assert worst >= -1e-9  # the generic answer is feasible
        assert abs(ours - theirs) <= 1e-6 * theirs
        # Cheaper than the least-latency plan at full CPU speed, which also meets the deadline.
        assert p.cpu_max_hz is not None
        assert ours < _energy(p, min_latency(p).bandwidth_hz, p.cpu_max_hz)


def test_min_energy_without_cpu_choice_only_moves_bands() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        p0 = _instance(rng)
        p = AllocationProblem(**{**p0.__dict__, "deadline_s": min_latency_finish_s(p0) * 1.5})
        a = min_energy(p)
        assert a.cpu_hz is None and not a.fallback
        assert np.all(_finish(p, a.bandwidth_hz) <= p.deadline_s)
        radio = float(np.sum(p.power_w * p.bits / rate_bps(a.bandwidth_hz, p.snr_hz)))
        for other in (equal(p).bandwidth_hz, min_latency(p).bandwidth_hz):
            if np.all(_finish(p, other) <= p.deadline_s):
                assert radio <= float(np.sum(p.power_w * p.bits / rate_bps(other, p.snr_hz))) * (1 + 1e-9)


def test_min_energy_falls_back_to_min_latency_when_the_deadline_is_infeasible() -> None:
    p0 = _instance(np.random.default_rng(4), cycles=True)
    p = AllocationProblem(**{**p0.__dict__, "deadline_s": min_latency_finish_s(p0) * 0.9})
    a = min_energy(p)
    assert a.fallback
    assert np.allclose(a.bandwidth_hz, min_latency(p).bandwidth_hz, rtol=1e-12)
    assert a.cpu_hz is not None and np.array_equal(a.cpu_hz, p.cpu_max_hz)


# -- on the clock ------------------------------------------------------------------------------------


def _cell_data(rng: np.random.Generator, n: int, fading: object = "none", **access: object) -> dict:  # type: ignore[type-arg]
    r = 500 * np.sqrt(rng.uniform(0.01, 1.0, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    return {
        "cell": {
            "positions_m": [(float(a * np.cos(f)), float(a * np.sin(f))) for a, f in zip(r, phi)],
            "shadowing_db": 0.0,
            "fading": fading,
        },
        "access": {"header_bytes": 40, **access},
        "devices": {"profile": "distribution"},
    }


def _cell(rng: np.random.Generator, n: int, fading: object = "none", **access: object) -> WirelessConfig:
    return WirelessConfig.model_validate(_cell_data(rng, n, fading, **access))


def _durations(cfg: WirelessConfig, n: int, k: int, seed: int, fake_driver, rounds: int = 1):  # type: ignore[no-untyped-def]
    pay = np.random.default_rng(seed).integers(10_000, 400_000, n)
    samples = np.random.default_rng(seed + 1).integers(100, 3000, n)
    drv = fake_driver(
        payload=lambda r, u: int(pay[u]), samples=lambda r, u: int(samples[u]), broadcast=200_000
    )
    drv.select = lambda rnd, avail, count: sorted(  # type: ignore[method-assign]
        np.random.default_rng([seed, rnd]).choice(list(avail), count, replace=False).tolist()
    )
    Clock(cfg, n, flops_per_sample=1e6, seed=seed).run(drv, rounds, k)
    return np.array([r.duration for r in drv.records]), drv


def test_min_latency_rounds_are_never_longer_than_equal_ones(fake_driver) -> None:  # type: ignore[no-untyped-def]
    for seed in range(25):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 12))
        k = int(rng.integers(1, n + 1))
        eq, _ = _durations(_cell(np.random.default_rng(seed), n), n, k, seed, fake_driver, rounds=2)
        ml, drv = _durations(
            _cell(np.random.default_rng(seed), n, allocation="min_latency"), n, k, seed, fake_driver, rounds=2
        )
        assert np.all(ml <= eq * (1 + 1e-12))
        for events in drv.events:
            ends = [e.t_upload_end for e in events]
            assert max(ends) - min(ends) <= 1e-9 * max(ends)  # every UE finishes at the same instant
            assert sum(e.bandwidth_hz for e in events) == pytest.approx(W, rel=1e-12)


def test_min_latency_shortens_rounds_on_average_with_fast_rayleigh_fading(fake_driver) -> None:  # type: ignore[no-untyped-def]
    # Blocks of 1 ms: an upload sees thousands of draws, so it gets close to the ergodic rate the
    # allocator plans with. (With long blocks the equalised finish times spread with the fading and the
    # latest of them can come after equal's: the plan leaves no slack.)
    n, k = 20, 5
    fading = {"model": "rayleigh", "coherence_time_s": 1e-3}
    eq, _ = _durations(_cell(np.random.default_rng(7), n, fading), n, k, 7, fake_driver, rounds=40)
    ml, _ = _durations(
        _cell(np.random.default_rng(7), n, fading, allocation="min_latency"), n, k, 7, fake_driver, rounds=40
    )
    d = eq - ml  # paired: same selections, same fading streams
    assert d.mean() > 3 * d.std(ddof=1) / math.sqrt(len(d))


def test_the_fading_quadratures_give_the_ergodic_rate() -> None:
    x, w = fading_quadrature("rayleigh")
    a = 10 ** np.linspace(-2, 3, 30)  # SNR on the band
    exact = np.exp(1 / a) * exp1(1 / a)  # E[ln(1 + a x)] for x ~ Exp(1)
    assert np.allclose(np.log1p(np.multiply.outer(a, x)) @ w, exact, rtol=2e-3, atol=0)
    xr, wr = fading_quadrature("rician", 3.0)
    assert xr @ wr == pytest.approx(1.0, rel=1e-12)  # mean power 1
    assert (xr - 1) ** 2 @ wr == pytest.approx((2 * 3 + 1) / 16, rel=1e-9)  # var = (2K+1)/(K+1)^2
    assert fading_quadrature("none") is None


def test_the_recorded_allocation_is_what_the_clock_used(fake_driver) -> None:  # type: ignore[no-untyped-def]
    n = 6
    cfg = _cell(np.random.default_rng(11), n, allocation="min_latency")
    _, drv = _durations(cfg, n, n, 11, fake_driver)
    clock = Clock(cfg, n, flops_per_sample=1e6, seed=11)
    for e in drv.events[0]:
        bits = 8 * (e.bytes_up + 40)
        snr = clock.mean_snr_up(e.ue, W) * W
        airtime = e.t_upload_end - e.t_upload_start
        assert airtime == pytest.approx(bits / float(rate_bps(e.bandwidth_hz, snr)), rel=1e-12)
        assert e.rate_up_bps == pytest.approx(float(rate_bps(e.bandwidth_hz, snr)), rel=1e-12)
        assert e.snr_up_db == pytest.approx(10 * math.log10(snr / e.bandwidth_hz), rel=1e-12)
    assert drv.records[0].extra["allocation_fallback"] == 0.0


def _energy_cell(deadline: float, allocation: str = "min_energy") -> WirelessConfig:
    data = _cell_data(np.random.default_rng(5), 6, allocation=allocation)
    data["devices"] = {"model": "cycles", "cycles_per_sample": 1e6, "profile": "distribution"}
    data["policy"] = {"name": "deadline", "deadline_s": deadline}
    return WirelessConfig.model_validate(data)


def test_min_energy_on_the_clock_meets_the_deadline_and_lowers_the_cpu(fake_driver) -> None:  # type: ignore[no-untyped-def]
    _, ref = _durations(_energy_cell(1e6, "equal"), 6, 6, 5, fake_driver)
    fastest = ref.records[0].duration
    deadline = 1.5 * fastest
    cfg = _energy_cell(deadline)
    _, drv = _durations(cfg, 6, 6, 5, fake_driver)
    rec, events = drv.records[0], drv.events[0]
    assert rec.arrived == 6 and rec.dropped == 0 and rec.extra["allocation_fallback"] == 0.0
    # Least energy uses the time it is given: every UE ends at the planned deadline (slow CPU, long upload).
    assert min(e.t_upload_end for e in events) >= 0.9 * deadline * (1 - 1e-6)
    clock = Clock(cfg, 6, flops_per_sample=1e6, seed=5)
    for e in events:
        prof = clock.profiles[e.ue]
        assert e.t_upload_end <= 0.9 * deadline * (1 + 1e-9)  # planned by (1 - allocation_margin) D
        assert 0 < e.cpu_hz <= prof.cpu_hz
        cycles = 1e6 * e.samples
        assert e.t_compute_end - e.t_compute_start == pytest.approx(cycles / e.cpu_hz, rel=1e-12)
        assert e.energy_compute_j == pytest.approx(prof.kappa * cycles * e.cpu_hz**2, rel=1e-12)
    assert rec.energy_j < ref.records[0].energy_j  # full CPU speed, equal split: more energy
    # The slower CPUs are what the jobs ran at: less compute energy, and some UE below its full speed.
    assert rec.extra["energy_compute_j"] < 0.9 * ref.records[0].extra["energy_compute_j"]
    assert any(e.cpu_hz < 0.99 * clock.profiles[e.ue].cpu_hz for e in events)


def test_min_energy_on_the_clock_falls_back_when_the_deadline_is_too_short(fake_driver) -> None:  # type: ignore[no-untyped-def]
    cfg = _energy_cell(1e-3)
    _, drv = _durations(cfg, 6, 6, 5, fake_driver)
    assert drv.records[0].extra["allocation_fallback"] == 1.0
    profiles = Clock(cfg, 6, flops_per_sample=1e6, seed=5).profiles
    assert all(e.cpu_hz == profiles[e.ue].cpu_hz for e in drv.events[0])  # CPUs at their full speed


def test_a_bad_allocation_override_is_a_config_error() -> None:
    from fedwave.config import load_config

    with pytest.raises(ConfigError, match=r"wireless\.access\.allocation.*unknown allocation 'fast'"):
        load_config(None, ["wireless.access.allocation=fast"])
    with pytest.raises(ConfigError, match=r"min_energy.*wireless\.policy\.name: deadline"):
        load_config(None, ["wireless.access.allocation=min_energy"])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"access": {"allocation": "fastest"}},
            r"unknown allocation 'fastest'.*equal, min_latency, min_energy",
        ),
        ({"access": {"allocation": "min_latency", "scheme": "tdma"}}, r"splits an FDMA band"),
        (
            {"access": {"allocation": "min_latency", "shares": [1.0, 2.0]}},
            r"remove them to use 'min_latency'",
        ),
        ({"access": {"allocation": "min_latency"}, "policy": {"name": "async"}}, r"policy 'async'"),
        ({"access": {"allocation": "min_energy"}}, r"set wireless.policy.name: deadline"),
    ],
)
def test_bad_allocation_configs_are_refused(data: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises((ConfigError, ValueError), match=match):
        WirelessConfig.model_validate(data)
