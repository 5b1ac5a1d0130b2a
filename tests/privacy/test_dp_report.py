"""Where epsilon shows: the study table, the privacy-utility figure, the HTML report, the run summary line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from fedwave.cli_views import privacy_line
from fedwave.config import config_data
from fedwave.fl.study import run_study
from fedwave.privacy.dp.accountant import RDP_ORDERS
from fedwave.report import load_study
from fedwave.report.html import render_report
from fedwave.report.privacy import fig_privacy_utility, varies_dp
from fedwave.report.tables import display_frame, summary_table

BASE = ["data.max_train=400", "fl.num_ues=6", "model.name=mlp", "fl.rounds=2"]
DP = ["fl.sampling=poisson", "fl.fraction=0.5", "dp.level=client"]


def _google(z: float, q: float, steps: int) -> float:
    acc = rdp_privacy_accountant.RdpAccountant(orders=list(RDP_ORDERS))
    acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), steps)
    return float(acc.get_epsilon(1e-5))


@pytest.fixture(scope="module")
def dp_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study_dir = tmp_path_factory.mktemp("dp") / "study"
    run_study(study_dir, config_data(None, [*BASE, *DP]), {"dp.noise_multiplier": ["0", "1"]}, 2)
    return study_dir


def test_the_study_table_has_epsilon_per_method(dp_study: Path) -> None:
    study = load_study(dp_study)  # stored epsilons (inf included) pass the integrity check
    table = summary_table(study).set_index("method")
    assert math.isinf(table.loc["dp.noise_multiplier=0", "epsilon_mean"])
    one = table.loc["dp.noise_multiplier=1"]
    assert one["epsilon_min"] == one["epsilon_max"] == pytest.approx(_google(1.0, 0.5, 2), rel=0.01)
    assert one["delta"] == 1e-5 and one["privacy"] == "dp"
    shown = display_frame(summary_table(study)).set_index("method")["epsilon"]
    assert shown["dp.noise_multiplier=0"] == "inf (δ 1e-05)"
    assert shown["dp.noise_multiplier=1"] == f"{_google(1.0, 0.5, 2):.3g} (δ 1e-05)"


def test_the_report_shows_the_privacy_utility_figure(dp_study: Path) -> None:
    study = load_study(dp_study)
    assert varies_dp(study)
    fig = fig_privacy_utility(study)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[-1] == "inf" and ax.get_xscale() == "log"
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    xs = {str(line.get_label()).split(" (")[0]: list(line.get_xdata()) for line in points}
    finite = xs["dp.noise_multiplier=1"]
    assert finite == pytest.approx([_google(1.0, 0.5, 2)] * 2, rel=0.01)  # one point per seed
    assert min(xs["dp.noise_multiplier=0"]) > max(finite)  # epsilon = inf: right of every finite one
    assert all(math.isfinite(x) for x in xs["dp.noise_multiplier=0"])
    html = render_report(study)
    assert 'id="fig-privacy-utility"' in html and "epsilon" in html


def test_studies_without_dp_show_no_epsilon_and_local_noise_is_unaccounted(tmp_path: Path) -> None:
    study_dir = tmp_path / "plain"
    run_study(study_dir, config_data(None, BASE), {"local_privacy.gradient_noise": ["0", "0.001"]}, 1)
    study = load_study(study_dir)
    assert not varies_dp(study)
    shown = display_frame(summary_table(study)).set_index("method")["epsilon"]
    assert shown["local_privacy.gradient_noise=0.001"] == "unaccounted"
    assert shown["local_privacy.gradient_noise=0"] == "—"
    assert 'id="fig-privacy-utility"' not in render_report(study)
    codecs = tmp_path / "codecs"
    run_study(codecs, config_data(None, [*BASE, "fl.rounds=1"]), {"codec": ["fp32", "fp16"]}, 1)
    assert "epsilon_mean" not in summary_table(load_study(codecs)).columns


def test_the_run_summary_line() -> None:
    dp = {"level": "client", "placement": "central", "epsilon": 3.0808, "delta": 1e-5}
    dp |= {"noise_multiplier": 1.0, "clip": 1.0, "accountant": "rdp", "target_epsilon": None}
    expected = "epsilon 3.081 at delta 1e-05 (client level, central noise, z = 1, clip 1.0, rdp)"
    assert privacy_line(dp) == expected
    stop = {"stopped_at_epsilon": True, "stop_reason": "stopped at epsilon after 3"}
    stopped = dp | {"epsilon": math.inf} | stop
    assert privacy_line(stopped).startswith("epsilon inf at delta")  # type: ignore[union-attr]
    assert privacy_line(stopped).endswith("; stopped at epsilon after 3")  # type: ignore[union-attr]
    local = {"level": "off", "epsilon": None, "local_privacy": {"gradient_noise": 0.1, "input_noise": 0.0}}
    local["local_privacy"] |= {"per_example_clipping": 0.0}  # type: ignore[operator]
    assert "unaccounted" in privacy_line(local)  # type: ignore[operator]
    assert privacy_line({"level": "off", "epsilon": None}) is None
