"""Time-correlated fading: the Gauss-Markov (AR(1)) process follows Jakes' J0 between blocks, keeps the
Exp(1) marginal, jumps idle gaps with rho^m, and is carried exactly across rounds and checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import j0

from fedwave.channel.gaussmarkov import GaussMarkovFading, ar1_filter, bessel_j0
from fedwave.config import load_config
from fedwave.errors import ConfigError
from fedwave.sim import Clock, WirelessConfig

C = 299_792_458.0


def _clock(speed_kmh: float, block_s: float | None, model: str = "rayleigh", ues: int = 3) -> Clock:
    fading = {"model": model, "process": "gauss_markov", "ue_speed_kmh": speed_kmh}
    if block_s is not None:
        fading["coherence_time_s"] = block_s
    return Clock(WirelessConfig.model_validate({"cell": {"fading": fading}}), ues, 1e6, 11)


def _expected_rho(speed_kmh: float, block_s: float, carrier_hz: float = 2e9) -> float:
    return float(j0(2 * math.pi * (speed_kmh / 3.6) * carrier_hz / C * block_s))


@pytest.mark.parametrize(
    ("speed_kmh", "block_s"),
    [(3.0, 0.01), (30.0, 0.005), (60.0, None)],  # rho = 0.970, 0.371, -0.124 (the default block: 0.423 / f_D)
)
def test_consecutive_blocks_correlate_as_j0(speed_kmh: float, block_s: float | None) -> None:
    clock = _clock(speed_kmh, block_s)
    t_b = clock.block_s
    if block_s is None:
        f_d = speed_kmh / 3.6 * 2e9 / C
        assert t_b == pytest.approx(math.sqrt(9 / (16 * math.pi)) / f_d, rel=1e-12)
    rho = _expected_rho(speed_kmh, t_b)
    assert clock.fading_rho == pytest.approx(rho, abs=1e-12)
    gm = clock.gauss_markov
    assert gm is not None
    n = 40_000
    gm.start(0, 5)
    s = gm.scattered(0, 5, n)
    # lag-1 sample autocorrelation of the complex AR(1): Bartlett's standard error sqrt((1 - rho^2) / n)
    r1 = float(np.real(np.vdot(s[:-1], s[1:])) / np.real(np.vdot(s, s)))
    se = math.sqrt((1 - rho**2) / n)
    assert abs(r1 - rho) < 4 * se + 1e-3
    # the power the rate sees has correlation rho^2 (Rayleigh)
    x = np.abs(s) ** 2
    rp = float(np.corrcoef(x[:-1], x[1:])[0, 1])
    assert abs(rp - rho**2) < 6 * math.sqrt(1 / n) + 1e-3


@pytest.mark.parametrize("rho", [0.8, -0.5])
@pytest.mark.parametrize("gap", [1, 3])
def test_a_jump_of_m_blocks_correlates_as_rho_to_the_m(rho: float, gap: int) -> None:
    n = 4000  # independent UEs, one pair each
    gm = GaussMarkovFading(n, rho, "rayleigh", 0.0, seed=5)
    a = np.empty(n, complex)
    b = np.empty(n, complex)
    for ue in range(n):
        gm.start(ue, 10)
        a[ue] = gm.scattered(ue, 10, 1)[0]
        gm.start(ue, 10 + gap)  # a later transmission (next round): the idle blocks are jumped at once
        b[ue] = gm.scattered(ue, 10 + gap, 1)[0]
    target = rho**gap
    r = float(np.real(np.vdot(a, b)) / math.sqrt(np.real(np.vdot(a, a)) * np.real(np.vdot(b, b))))
    assert abs(r - target) < 4 * (1 - target**2) / math.sqrt(n)
    assert np.mean(np.abs(b) ** 2) == pytest.approx(1.0, abs=4 * math.sqrt(1 / n))  # still CN(0, 1)


@pytest.mark.parametrize(("model", "k", "var"), [("rayleigh", 0.0, 1.0), ("rician", 3.0, 7 / 16)])
def test_marginal_power_keeps_its_distribution(model: str, k: float, var: float) -> None:
    # 3000 independent UEs, each after 200 AR(1) steps with rho = 0.97: mean 1, and the variance of
    # Exp(1) (Rayleigh) or (1 + 2K) / (K + 1)^2 (Rician: the line-of-sight part does not evolve)
    n = 3000
    gm = GaussMarkovFading(n, 0.97, model, k, seed=2)
    x = np.empty(n)
    for ue in range(n):
        gm.start(ue, 0)
        x[ue] = gm.power(ue, 0, 201)[-1]
    assert np.mean(x) == pytest.approx(1.0, abs=4 * math.sqrt(var / n))
    fourth = 9.0 if model == "rayleigh" else 1.0  # sd of the sample variance: sqrt((mu4 - var^2) / n)
    assert np.var(x) == pytest.approx(var, abs=4 * math.sqrt((fourth - var**2) / n) + 0.02)
    if model == "rayleigh":
        assert np.mean(x > 1.0) == pytest.approx(math.exp(-1.0), abs=4 * math.sqrt(0.25 / n))


def test_blocks_are_on_an_absolute_grid_and_shared_by_up_and_downlink() -> None:
    clock = _clock(3.0, 0.01)
    gm = clock.gauss_markov
    assert gm is not None
    # an uplink from UE 1 starting in block 250 (t = 2.503 s) ...
    clock.transmit(1, 1e6, 10_000, (0, 1), 2.503)
    before = gm.scattered(1, 250, 3).copy()
    # ... then a broadcast starting in the same block sees the same channel (reciprocity)
    clock.downlink_time_s([1], 50, [(0, 1)], 2.5045)
    assert np.array_equal(gm.scattered(1, 250, 3), before)
    with pytest.raises(RuntimeError, match="before block"):
        gm.start(1, 249)  # simulated time never goes back


def test_default_iid_needs_no_time_and_keeps_no_state() -> None:
    clock = Clock(WirelessConfig(), 4, 1e6, 1)
    assert clock.gauss_markov is None and clock.mobility is None and clock.state_dict() == {}
    clock.transmit(0, 1e6, 1000, (0, 0))  # no t_s needed
    gm = _clock(3.0, 0.01)
    with pytest.raises(ValueError, match="t_s"):
        gm.transmit(0, 1e6, 1000, (0, 0))


# Figures for this config and seed with i.i.d. fading (the default), pinned when the clock's link streams
# became counter-based (issue 12) and again when Rayleigh blocks came to be drawn from 32-bit halves of
# the stream's words; the SimPy and the vectorised clock both give them.
PINNED_T_END = [0.6323616435044113, 1.251242602924202, 1.89355022715891]


@pytest.mark.parametrize("mode", ["auto", "simpy"])
def test_iid_default_gives_the_pinned_figures(fake_driver, mode: str) -> None:
    drv = fake_driver(payload=lambda r, ue: 200_000 + 1000 * ue, samples=lambda r, ue: 40 + ue % 50)
    Clock(WirelessConfig.model_validate({"clock": mode}), 30, 7.35e6, 3).run(drv, 3, 12)
    assert [r.t_end for r in drv.records] == PINNED_T_END


GM_MOBILE = {
    "cell": {
        "fading": {"process": "gauss_markov", "coherence_time_s": 0.004, "ue_speed_kmh": 50.0},
        "mobility": {"model": "random_waypoint", "pause_s": 0.5},
    },
    "access": {"packet_errors": {"enabled": True, "waterfall_threshold_db": 20.0}},
    "policy": {"name": "deadline", "deadline_s": 1.0},
}


def _timeline(fake_driver, clock: Clock, rounds: int, start_round: int = 0, t_start: float = 0.0):
    drv = fake_driver(payload=lambda r, ue: 20_000 + 1000 * ue, samples=lambda r, ue: 40 + ue % 50)
    clock.run(drv, rounds, 10, start_round=start_round, t_start=t_start)
    return drv, [
        json.dumps([r.as_dict(), [e.as_dict() for e in evs]]) for r, evs in zip(drv.records, drv.events)
    ]


def test_resume_with_the_clock_state_is_exact(fake_driver) -> None:
    cfg = WirelessConfig.model_validate(GM_MOBILE)
    full_drv, full = _timeline(fake_driver, Clock(cfg, 20, 7.35e6, 4), 4)
    first = Clock(cfg, 20, 7.35e6, 4)
    _timeline(fake_driver, first, 2)
    state = json.loads(json.dumps(first.state_dict()))  # plain data
    resumed = Clock(cfg, 20, 7.35e6, 4)
    resumed.load_state_dict(state)
    t2 = full_drv.records[2].t_start
    assert _timeline(fake_driver, resumed, 2, start_round=2, t_start=t2)[1] == full[2:]
    # without the state the fading of rounds 2-3 is another draw
    assert _timeline(fake_driver, Clock(cfg, 20, 7.35e6, 4), 2, start_round=2, t_start=t2)[1] != full[2:]


def test_bad_process_configs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"fading\.block"):
        load_config(None, ["wireless.cell.fading.process=gauss_markov", "wireless.cell.fading.block=round"])
    with pytest.raises(ConfigError, match="process"):
        load_config(None, ["wireless.cell.fading.process=ar2"])


@pytest.mark.parametrize("a", [0.0, 0.3, -0.12, 0.97, 0.99999, -0.999, 1.0])
def test_ar1_filter_matches_the_plain_recursion(a: float) -> None:
    from scipy.signal import lfilter

    rng = np.random.default_rng(0)
    w = rng.standard_normal(5000) + 1j * rng.standard_normal(5000)
    c = math.sqrt(1 - a * a)
    y0 = 0.7 - 0.2j
    got = ar1_filter(w, a, c, y0)
    want, _ = lfilter([c], [1.0, -a], w, zi=np.array([a * y0]))
    scale = np.abs(want).max() + 1.0
    assert np.max(np.abs(got - want)) < 1e-9 * scale


def test_j0_in_numpy_matches_scipy() -> None:
    xs = np.linspace(0.0, 300.0, 3001)
    assert max(abs(bessel_j0(float(x)) - float(j0(x))) for x in xs) < 1e-12
