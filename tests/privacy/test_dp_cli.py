"""``fedwave privacy``: the accountant alone, checked against dp-accounting computed here independently."""

from __future__ import annotations

import itertools
import math
import re

import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from fedwave.cli import main
from fedwave.config import load_config
from fedwave.privacy.dp import Schedule, planned_epsilons
from fedwave.privacy.dp.accountant import RDP_ORDERS
from fedwave.privacy.dp.plan import ue_sizes_for

CLIENT = ["-o", "dp.level=client", "-o", "fl.sampling=poisson", "-o", "fl.fraction=0.25"]


def _google_rdp(z: float, q: float, steps: int, delta: float = 1e-5) -> float:
    acc = rdp_privacy_accountant.RdpAccountant(orders=list(RDP_ORDERS))
    acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), steps)
    return float(acc.get_epsilon(delta))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["privacy", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _table(out: str) -> list[tuple[int, list[float]]]:
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].isdigit() and len(parts) >= 2:
            rows.append((int(parts[0]), [float(p) for p in parts[1:]]))
    return rows


def test_client_level_prints_epsilon_per_round_and_q(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, *CLIENT, "-o", "dp.noise_multiplier=1.1", "-o", "fl.rounds=25")
    assert rc == 0
    assert "q = 0.25 per round (Poisson sampling" in out and "5 expected of 20 UEs" in out
    rows = _table(out)
    assert [r for r, _ in rows] == list(range(1, 26))
    eps = [e[0] for _, e in rows]
    assert all(a < b for a, b in itertools.pairwise(eps))
    for r in (1, 10, 25):
        assert eps[r - 1] == pytest.approx(_google_rdp(1.1, 0.25, r), rel=0.01)


def test_target_epsilon_prints_the_calibrated_z(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, *CLIENT, "-o", "dp.target_epsilon=4", "-o", "fl.rounds=60")
    assert rc == 0
    z = float(re.search(r"noise multiplier z = ([0-9.]+), calibrated", out).group(1))  # type: ignore[union-attr]
    assert _google_rdp(z, 0.25, 60) == pytest.approx(4.0, rel=0.01)
    assert _table(out)[-1][1][0] <= 4.0


def test_many_rounds_give_a_compact_table(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, *CLIENT, "-o", "dp.noise_multiplier=2.0", "-o", "fl.rounds=1000")
    assert rc == 0
    rounds = [r for r, _ in _table(out)]
    assert rounds[0] == 1 and rounds[-1] == 1000 and 10 <= len(rounds) <= 30
    assert "compact table" in out
    assert _table(out)[-1][1][0] == pytest.approx(_google_rdp(2.0, 0.25, 1000), rel=0.01)


def test_stop_at_epsilon_names_the_last_round_within_it(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(
        capsys, *CLIENT, "-o", "dp.noise_multiplier=1.0", "-o", "fl.rounds=100", "-o", "dp.stop_at_epsilon=10"
    )
    assert rc == 0
    last = int(re.search(r"training would stop after round (\d+)", out).group(1))  # type: ignore[union-attr]
    before, after = planned_epsilons("rdp", 1.0, Schedule(0.25, 1), [last, last + 1], 1e-5)
    assert before <= 10.0 < after


def test_sample_level_reports_the_worst_ue(capsys: pytest.CaptureFixture[str]) -> None:
    overrides = [
        "dp.level=sample",
        "dp.noise_multiplier=1.2",
        "fl.rounds=5",
        "fl.num_ues=6",
        "data.lognormal_sigma=0.5",
    ]
    rc, out, _ = _run(capsys, *[a for o in overrides for a in ("-o", o)])
    assert rc == 0
    sizes = ue_sizes_for(load_config(None, overrides))
    n_min, batch = min(sizes), 10
    worst = _google_rdp(1.2, batch / n_min, 5 * math.ceil(n_min / batch))
    final = _table(out)[-1][1]
    assert final[0] == pytest.approx(worst, rel=0.01)  # max over UEs: the UE with the least data
    assert final[0] >= final[1] >= final[2]  # max >= median >= min
    assert f"{n_min} samples)" in out and "over the 6 UEs" in out


def test_dp_off_is_an_error_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys)
    assert rc == 2 and "dp.level is 'off'" in err and "-o dp.level=client" in err
    rc, _, err = _run(capsys, "-o", "dp.level=client", "-o", "dp.noise_multiplier=-1")
    assert rc == 2 and "dp.noise_multiplier" in err and "Traceback" not in err


def test_bench_privacy_prints_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "privacy", "--dp-rounds", "20", "--accountants", "rdp"]) == 0
    out = capsys.readouterr().out
    assert "over 20 rounds" in out and len(re.findall(r"\d+\.\d\d s / +\d+\.\d\d s ", out)) == 3
