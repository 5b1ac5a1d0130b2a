"""The run ledger: client rounds (central and distributed, with drops), per-UE sample level, resume."""

from __future__ import annotations

import math

import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from fedwave.config import load_config
from fedwave.privacy.dp import PrivacyLedger, Schedule, plan_privacy, planned_epsilons, resolved_dp_config
from fedwave.privacy.dp.accountant import RDP_ORDERS

CLIENT = ["dp.level=client", "fl.sampling=poisson", "fl.fraction=0.25", "dp.noise_multiplier=1.1"]


def _google_rdp(steps: list[tuple[float, float, int]], delta: float = 1e-5) -> float:
    acc = rdp_privacy_accountant.RdpAccountant(orders=list(RDP_ORDERS))
    for z, q, n in steps:
        acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), n)
    return float(acc.get_epsilon(delta))


def _ledger(*overrides: str, sizes: list[int] | None = None) -> PrivacyLedger:
    cfg = load_config(None, list(overrides))
    return PrivacyLedger(plan_privacy(cfg, sizes))


def test_central_rounds_follow_the_plan() -> None:
    ledger = _ledger(*CLIENT)
    eps = []
    for _ in range(12):
        assert ledger.next_round_epsilon() == pytest.approx(
            planned_epsilons("rdp", 1.1, Schedule(0.25, 1), [len(eps) + 1], 1e-5)[0], rel=1e-12
        )
        assert ledger.client_round() == 1.1
        eps.append(ledger.epsilon())
    assert eps == sorted(eps) and eps[0] < eps[-1]
    assert eps[-1] == pytest.approx(_google_rdp([(1.1, 0.25, 12)]), rel=0.01)


def test_a_dropped_share_lowers_the_delivered_noise_and_raises_epsilon() -> None:
    full = _ledger(*CLIENT, "dp.placement=distributed")
    dropped = _ledger(*CLIENT, "dp.placement=distributed")
    for r in range(10):
        full.client_round(delivered=5, planned=5)
        z = dropped.client_round(delivered=4 if r == 3 else 5, planned=5)
        assert z == (1.1 * math.sqrt(4 / 5) if r == 3 else 1.1)
    assert dropped.epsilon() > full.epsilon() * 1.005
    expected = _google_rdp([(1.1, 0.25, 3), (1.1 * math.sqrt(4 / 5), 0.25, 1), (1.1, 0.25, 6)])
    assert dropped.epsilon() == pytest.approx(expected, rel=0.01)
    before = dropped.epsilon()
    assert dropped.client_round(delivered=0, planned=5) == 0.0  # nothing of anyone's data released
    assert dropped.epsilon() == before
    with pytest.raises(ValueError, match="planned and delivered"):
        dropped.client_round(planned=5)


def test_no_clipping_is_accounted_as_infinite_epsilon() -> None:
    ledger = _ledger("dp.level=client", "dp.clip=null", "dp.noise_multiplier=0")
    assert ledger.epsilon() == 0.0
    ledger.client_round()
    assert ledger.epsilon() == math.inf


def test_sample_level_accounts_each_ue_at_its_rate() -> None:
    ledger = _ledger("dp.level=sample", "dp.noise_multiplier=1.3", "fl.num_ues=3", sizes=[20, 50, 100])
    ledger.ue_released(0, 4)
    ledger.ue_released(0, 4)
    ledger.ue_released(2, 10)
    eps = ledger.ue_epsilons()
    assert eps[1] == 0.0
    assert eps[0] == pytest.approx(_google_rdp([(1.3, 10 / 20, 8)]), rel=0.01)
    assert eps[2] == pytest.approx(_google_rdp([(1.3, 10 / 100, 10)]), rel=0.01)
    assert ledger.epsilon() == max(eps.values())
    with pytest.raises(ValueError, match="not in the plan"):
        ledger.ue_released(3, 1)
    with pytest.raises(ValueError, match="client_round is for"):
        ledger.client_round()


def test_ledgers_resume_bit_for_bit() -> None:
    for overrides, sizes in [
        ((*CLIENT, "dp.accountant=pld"), None),
        (("dp.level=sample", "dp.noise_multiplier=1", "fl.num_ues=2"), [30, 60]),
    ]:
        ledger = _ledger(*overrides, sizes=sizes)
        for _ in range(3):
            if ledger.level == "client":
                ledger.client_round()
            else:
                ledger.ue_released(1, 6)
        again = _ledger(*overrides, sizes=sizes)
        again.load_state_dict(ledger.state_dict())
        assert again.epsilon() == ledger.epsilon() > 0


def test_resolved_config_names_the_calibrated_z() -> None:
    cfg = load_config(None, ["dp.level=client", "dp.target_epsilon=5", "fl.rounds=10"])
    plan = plan_privacy(cfg)
    dp = resolved_dp_config(cfg, plan)
    assert dp.noise_multiplier == plan.noise_multiplier and dp.target_epsilon is None
    again = load_config(
        None, ["dp.level=client", f"dp.noise_multiplier={dp.noise_multiplier!r}", "fl.rounds=10"]
    )
    assert plan_privacy(again).epsilons([10]) == plan.epsilons([10])


def test_ues_without_data_release_nothing() -> None:
    cfg = load_config(None, ["dp.level=sample", "dp.noise_multiplier=1", "fl.num_ues=3"])
    plan = plan_privacy(cfg, [40, 0, 10])
    assert sorted(ue for ues in plan.schedules.values() for ue in ues) == [0, 2]
    ledger = PrivacyLedger(plan)
    ledger.ue_released(2, 1)
    assert ledger.ue_epsilons()[0] == 0.0 and 1 not in ledger.ue_epsilons()
