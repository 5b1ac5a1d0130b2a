"""Accountants against the other library; heterogeneous steps; calibration; special cases.

What is compared with what:

* ``rdp`` (Opacus's sampled-Gaussian RDP, ``opacus.accountants.analysis.rdp``) against dp-accounting's
  ``RdpAccountant`` on the same orders: two independent implementations of the same bound (both use the
  RDP -> (epsilon, delta) conversion of Balle et al. 2020 / Asoodeh et al.).
* ``prv`` (Opacus's PRV accountant) against ``pld`` (dp-accounting's PLD accountant): two independent
  numerical accountants of the exact privacy curve.
"""

from __future__ import annotations

import itertools
import math

import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from fedwave.errors import ConfigError
from fedwave.privacy.dp import (
    Schedule,
    calibrate_noise_multiplier,
    effective_noise_multiplier,
    make_accountant,
    planned_epsilons,
)
from fedwave.privacy.dp.accountant import RDP_ORDERS, PRVAccountant, accountant_names
from fedwave.privacy.dp.calibrate import bisect_noise_multiplier

Steps = list[tuple[float, float, int]]


def _google_rdp(steps: Steps, delta: float) -> float:
    acc = rdp_privacy_accountant.RdpAccountant(orders=list(RDP_ORDERS))
    for z, q, n in steps:
        acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), n)
    return float(acc.get_epsilon(delta))


def _google_pld(steps: Steps, delta: float) -> float:
    acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)
    for z, q, n in steps:
        acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), n)
    return float(acc.get_epsilon(delta))


def _ours(name: str, steps: Steps, delta: float) -> float:
    acc = make_accountant(name)
    if isinstance(acc, PRVAccountant):
        acc.eps_error = 0.02  # absolute; < 0.5% of the epsilons compared here, and several times faster
    for z, q, n in steps:
        acc.step(z, q, n)
    return acc.get_epsilon(delta)


CASES = [  # (q, z, T, delta)
    (0.01, 1.1, 1000, 1e-5),
    (0.05, 0.8, 100, 1e-5),
    (0.25, 2.0, 50, 1e-6),
    (1.0, 1.5, 20, 1e-5),
]


def test_registry_lists_the_three_accountants() -> None:
    assert accountant_names() == ["pld", "prv", "rdp"]
    with pytest.raises(ConfigError, match=r"dp\.accountant.*'rpd'.*pld, prv, rdp"):
        make_accountant("rpd")


@pytest.mark.parametrize(("q", "z", "rounds", "delta"), CASES)
def test_opacus_rdp_matches_dp_accounting_rdp(q: float, z: float, rounds: int, delta: float) -> None:
    ours = _ours("rdp", [(z, q, rounds)], delta)
    other = _google_rdp([(z, q, rounds)], delta)
    assert 0 < ours < math.inf
    assert ours == pytest.approx(other, rel=0.01)


@pytest.mark.parametrize(
    ("q", "z", "rounds", "delta"),
    [pytest.param(*CASES[1], marks=pytest.mark.slow), *CASES[2:]],  # the first costs ~7 s of PRV
)
def test_opacus_prv_matches_dp_accounting_pld(q: float, z: float, rounds: int, delta: float) -> None:
    prv = _ours("prv", [(z, q, rounds)], delta)
    pld = _ours("pld", [(z, q, rounds)], delta)
    assert prv == pytest.approx(_google_pld([(z, q, rounds)], delta), rel=0.01)
    assert prv == pytest.approx(pld, rel=0.01)
    # Both numerical accountants are tighter than the RDP bound, never looser.
    assert prv <= _ours("rdp", [(z, q, rounds)], delta) * 1.001


def test_heterogeneous_steps_match_the_other_library() -> None:
    steps: Steps = [(1.2, 0.1, 30), (0.9, 0.1, 1), (1.2, 0.1, 20), (0.7, 0.2, 5)]
    assert _ours("rdp", steps, 1e-5) == pytest.approx(_google_rdp(steps, 1e-5), rel=0.01)
    assert _ours("prv", steps, 1e-5) == pytest.approx(_google_pld(steps, 1e-5), rel=0.01)
    # Different from the homogeneous run at the larger z, in the right direction.
    assert _ours("rdp", steps, 1e-5) > _ours("rdp", [(1.2, 0.1, 56)], 1e-5)


def test_equal_consecutive_steps_merge_and_state_round_trips() -> None:
    for name in accountant_names():
        acc = make_accountant(name)
        for _ in range(5):
            acc.step(1.0, 0.1)
        acc.step(0.8, 0.1, 3)
        assert acc.history == [(1.0, 0.1, 5), (0.8, 0.1, 3)] and acc.steps == 8
        again = make_accountant(name)
        again.load_state_dict(acc.state_dict())
        assert again.history == acc.history  # PRV recomputes from the history alone
        if name != "prv":
            assert again.get_epsilon(1e-5) == acc.get_epsilon(1e-5)  # bit for bit after a resume
    with pytest.raises(ValueError, match="'rdp' loaded into 'pld'"):
        make_accountant("pld").load_state_dict(make_accountant("rdp").state_dict())
    with pytest.raises(ValueError, match="fresh accountant"):
        acc.load_state_dict(acc.state_dict())


@pytest.mark.parametrize("name", ["rdp", "prv", "pld"])
def test_special_steps(name: str) -> None:
    acc = make_accountant(name)
    assert acc.get_epsilon(1e-5) == 0.0  # nothing released yet
    acc.step(1.0, 0.0, 10)  # nobody sampled: no release
    acc.step(1.0, 0.3, 0)
    assert acc.history == [] and acc.get_epsilon(1e-5) == 0.0
    acc.step(1.0, 0.3, 2)
    assert acc.history == [(1.0, 0.3, 2)]
    if name != "prv":  # (finite PRV epsilons are checked against PLD above)
        assert 0 < acc.get_epsilon(1e-5) < math.inf
    acc.step(0.0, 0.3, 1)  # data released without noise
    assert acc.get_epsilon(1e-5) == math.inf
    for bad in [(-1.0, 0.1, 1), (math.inf, 0.1, 1), (1.0, 1.5, 1), (1.0, 0.1, -1)]:
        with pytest.raises(ValueError):
            acc.step(*bad)
    with pytest.raises(ValueError, match="delta"):
        acc.get_epsilon(1.0)


def test_fewer_delivered_shares_lower_z_and_raise_epsilon() -> None:
    """Distributed noise: a round in which 6 of 8 shares arrive is accounted at z sqrt(6/8)."""
    z, q, delta = 1.0, 0.2, 1e-5
    z_eff = effective_noise_multiplier(z, 6, 8)
    assert z_eff == pytest.approx(z * math.sqrt(6 / 8), rel=1e-12) and z_eff < z
    assert effective_noise_multiplier(z, 8, 8) == z
    planned: Steps = [(z, q, 10)]
    dropped: Steps = [(z, q, 4), (z_eff, q, 1), (z, q, 5)]
    for name in ("rdp", "pld"):
        assert _ours(name, dropped, delta) > _ours(name, planned, delta) * 1.01
    assert _ours("rdp", dropped, delta) == pytest.approx(_google_rdp(dropped, delta), rel=0.01)


def test_planned_epsilons_increase_and_match_one_shot_accounting() -> None:
    sched = Schedule(0.1, 3)
    eps = planned_epsilons("rdp", 1.1, sched, [1, 2, 5, 40], 1e-5)
    assert all(a < b for a, b in itertools.pairwise(eps))
    assert eps[-1] == pytest.approx(_google_rdp([(1.1, 0.1, 120)], 1e-5), rel=0.01)


@pytest.mark.parametrize(("name", "check"), [("rdp", _google_rdp), ("pld", _google_pld)])
def test_calibration_reaches_the_target_within_one_percent(name: str, check: object) -> None:
    target, q, rounds, delta = 3.0, 0.1, 200, 1e-5
    z = calibrate_noise_multiplier(target, delta, [Schedule(q, 1)], rounds, name)
    eps = planned_epsilons(name, z, Schedule(q, 1), [rounds], delta)[0]
    assert target * 0.99 <= eps <= target
    assert callable(check)
    assert check([(z, q, rounds)], delta) == pytest.approx(target, rel=0.01)  # the other library agrees


def test_calibration_targets_the_worst_schedule() -> None:
    # Like sample level: UEs with less data have a larger q = B / n_k but fewer steps per round.
    schedules = [Schedule(0.02, 50), Schedule(0.1, 10), Schedule(0.2, 5)]
    z = calibrate_noise_multiplier(2.0, 1e-5, schedules, 10, "rdp")
    eps = [planned_epsilons("rdp", z, s, [10], 1e-5)[0] for s in schedules]
    assert 2.0 * 0.99 <= max(eps) <= 2.0
    assert eps[2] == max(eps)  # the smallest UE (largest q) is the worst here
    assert eps[2] == pytest.approx(_google_rdp([(z, 0.2, 50)], 1e-5), rel=0.01)


def test_bisection_brackets_both_ways_and_refuses_unreachable_targets() -> None:
    for true_z in (0.05, 0.7, 40.0):  # epsilon_of(z) = true_z / z reaches 1 at z = true_z
        z = bisect_noise_multiplier(lambda x, t=true_z: t / x, 1.0)
        assert 0.995 <= true_z / z <= 1.0
    with pytest.raises(ConfigError, match=r"dp\.target_epsilon=0\.5 is not reached"):
        bisect_noise_multiplier(lambda x: 1.0 + 1.0 / x, 0.5)
