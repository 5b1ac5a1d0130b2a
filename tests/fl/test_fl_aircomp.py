"""Over-the-air computation through the real driver and BS (issue 14, item 1): the aggregate that enters
training, its noise, truncation, one-bit votes, the refusals, and learning end to end."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
import torch

from fedwave.cli import main
from fedwave.config import load_config
from fedwave.errors import ConfigError
from fedwave.fl.run import Simulation, build_simulation

SMALL = ["data.max_train=300", "fl.num_ues=6", "model.name=mlp", "data.lognormal_sigma=0.6"]  # unequal sizes
AIR = [*SMALL, "wireless.access.scheme=aircomp"]
QUIET = "wireless.cell.noise_psd_dbm_hz=-400"  # N0 = 1e-43 W/Hz: the received noise is negligible


def _capture(sim: Simulation, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list]:
    """Wrap the driver's encoding and the BS's over-the-air step.

    Returns ``updates[(round, ue)] = (flat float64 update, samples)`` as each UE computed it, and the list
    of ``(flat mean, ues)`` the BS stepped along.
    """
    updates: dict[tuple[int, int], tuple[np.ndarray, int]] = {}
    steps: list[tuple[np.ndarray, list[int]]] = []
    drv = sim.driver
    real_encode, real_step = drv._encode, drv.bs.step_along

    def encode(round: int, ue: int, version: int, shared: dict[str, Any], dispatch: int, silent: bool):
        flat = torch.cat([g.detach().reshape(-1).double() for g in shared["gradients"]]).numpy()
        updates[(round, ue)] = (flat, int(shared["metadata"]["num_data_points"]))
        return real_encode(round, ue, version, shared, dispatch, silent)

    def step(mean: list[torch.Tensor], ues: list[int]):
        flat = torch.cat([m.reshape(-1).double() for m in mean]).numpy() if mean else np.zeros(0)
        steps.append((flat, list(ues)))
        return real_step(mean, ues)

    monkeypatch.setattr(drv, "_encode", encode)
    monkeypatch.setattr(drv.bs, "step_along", step)
    return updates, steps


def _digital_mean(updates: dict, rnd: int, ues: list[int], weighting: str) -> np.ndarray:
    u = np.stack([updates[(rnd, ue)][0] for ue in ues])
    n = np.array([updates[(rnd, ue)][1] if weighting == "samples" else 1.0 for ue in ues], dtype=float)
    return (n / n.sum()) @ u


@pytest.mark.parametrize("weighting", ["samples", "uniform"])
def test_noiseless_aircomp_aggregate_is_the_digital_mean(
    weighting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(None, [*AIR, QUIET, "fl.rounds=2", f"fl.weighting={weighting}"])
    sim = build_simulation(cfg)
    updates, steps = _capture(sim, monkeypatch)
    sim.run_rounds(2)
    for rnd, (mean, ues) in enumerate(steps):
        assert ues == list(range(6))
        digital = _digital_mean(updates, rnd, ues, weighting)
        assert np.allclose(mean, digital, rtol=1e-6, atol=1e-7 * np.abs(digital).max())
    # the same run over FDMA (digital fp32, the BS's weighted mean) reaches the same model
    fdma = build_simulation(load_config(None, [*SMALL, "fl.rounds=2", f"fl.weighting={weighting}"]))
    fdma.run_rounds(2)
    for a, b in zip(sim.driver.bs.parameters_snapshot(), fdma.driver.bs.parameters_snapshot()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_aircomp_noise_enters_the_model_with_the_derived_variance(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None, [*AIR, "fl.rounds=2", "wireless.cell.noise_psd_dbm_hz=-160"])
    sim = build_simulation(cfg)
    updates, steps = _capture(sim, monkeypatch)
    sim.run_rounds(2)
    for rnd, (mean, ues) in enumerate(steps):
        record = sim.driver.records[rnd]
        k = len(ues)
        n = np.array([updates[(rnd, ue)][1] for ue in ues], dtype=float)
        scaled = (k * n / n.sum())[:, None] * np.stack([updates[(rnd, ue)][0] for ue in ues])
        snr = 10 ** (record.extra["aircomp_rx_snr_db"] / 10)  # rho0 / (N0 W)
        expected = np.var(scaled) / (snr * k**2)
        err = mean - _digital_mean(updates, rnd, ues, "samples")
        d = err.size
        assert abs(np.var(err) / expected - 1) < 5 * math.sqrt(2 / (d - 1))
        assert record.extra["aircomp_noise_std"] == pytest.approx(math.sqrt(expected), rel=1e-6)
        norms = np.linalg.norm(scaled, axis=1)
        assert record.extra["aircomp_noise_multiplier"] == pytest.approx(
            math.sqrt(expected) * k / norms.max(), rel=1e-6
        )


def test_truncated_ues_do_not_enter_the_aggregate(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(
        None,
        [*AIR, QUIET, "fl.rounds=3", "fl.num_ues=10", "wireless.access.aircomp.truncation_fading_power=0.7"],
    )
    sim = build_simulation(cfg)
    updates, steps = _capture(sim, monkeypatch)
    sim.run_rounds(3)
    seen_truncation = False
    for rnd, (mean, ues) in enumerate(steps):
        events = sim.driver.records[rnd]
        truncated = int(events.extra["aircomp_truncated"])
        seen_truncation |= truncated > 0
        assert len(ues) + truncated == 10 and events.arrived == len(ues)
        digital = _digital_mean(updates, rnd, ues, "samples")
        assert np.allclose(mean, digital, rtol=1e-6, atol=1e-7 * np.abs(digital).max())
        if truncated:
            everyone = _digital_mean(updates, rnd, list(range(10)), "samples")
            assert not np.allclose(mean, everyone, rtol=1e-3, atol=1e-6)
    assert seen_truncation


def test_one_bit_mode_steps_along_the_scaled_majority_vote(monkeypatch: pytest.MonkeyPatch) -> None:
    one_bit = "wireless.access.aircomp.mode=one_bit"
    cfg = load_config(None, [*AIR, QUIET, "fl.rounds=1", "fl.num_ues=5", one_bit])
    sim = build_simulation(cfg)
    updates, steps = _capture(sim, monkeypatch)
    sim.run_rounds(1)
    mean, ues = steps[0]
    u = np.stack([updates[(0, ue)][0] for ue in ues])
    n = np.array([updates[(0, ue)][1] for ue in ues], dtype=float)
    scale = float((n / n.sum()) @ np.abs(u).mean(axis=1))
    votes = np.sign(u).sum(axis=0)
    decided = votes != 0  # a tie (e.g. weights of an always-zero pixel) is broken by the noise alone
    assert decided.mean() > 0.5
    assert np.allclose(mean[decided], scale * np.sign(votes[decided]), rtol=1e-6, atol=0)
    assert np.allclose(np.abs(mean[~decided]), scale, rtol=1e-6)
    assert sim.driver.records[0].extra["aircomp_flip_rate"] == 0.0


def test_aircomp_learns_about_as_well_as_fdma() -> None:
    common = ["data.max_train=600", "fl.num_ues=10", "model.name=2nn", "fl.rounds=5"]
    acc = {}
    for scheme in ("fdma", "aircomp"):
        sim = build_simulation(load_config(None, [*common, f"wireless.access.scheme={scheme}"]))
        sim.run_rounds(5)
        acc[scheme] = sim.driver.records[-1].accuracy
    assert acc["fdma"] > 0.7
    assert acc["aircomp"] > acc["fdma"] - 0.05


# ------------------------------------------------------------------------------------------- refusals

REFUSED = {
    "first_k": (["wireless.policy.name=first_k", "wireless.policy.k=2"], "Set policy.name to 'sync' or"),
    "async": (["wireless.policy.name=async"], "Set policy.name to 'sync' or"),
    "shares": (["wireless.access.shares=[1,1,1,1,1,1]"], "remove access.shares"),
    "event_trigger": (["wireless.event_trigger.enabled=true"], "set event_trigger.enabled=false"),
    "packet_errors": (["wireless.access.packet_errors.enabled=true"], "access.packet_errors.enabled=false"),
    "codec": (["codec=uniform:8"], "set codec.uplink=fp32"),
    "aggregator": (["server.aggregator=median"], "use server.aggregator=mean"),
    "norm_bound": (["server.norm_bound=1.0"], "remove server.norm_bound"),
    "gauss_markov": (["wireless.cell.fading.process=gauss_markov"], "set cell.fading.process=iid"),
    "mobility": (["wireless.cell.mobility=random_waypoint"], "cell.mobility=static"),
    "client_dp": (
        ["dp.level=client", "fl.sampling=poisson", "fl.fraction=0.5", "dp.noise_multiplier=1.0"],
        "use dp.level=sample or off",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cannot_go_with_aircomp_is_refused_with_the_fix(case: str) -> None:
    overrides, fix = REFUSED[case]
    with pytest.raises(ConfigError, match=re.escape(fix)):
        load_config(None, [*AIR, *overrides])
    load_config(None, [*SMALL, *overrides])  # the same settings are fine without aircomp


def test_models_with_buffers_are_refused_before_training() -> None:
    cfg = load_config(None, [*AIR[:-2], "model.name=resnet", "wireless.access.scheme=aircomp"])
    with pytest.raises(ConfigError, match="cannot carry"):
        build_simulation(cfg)


def test_cli_refuses_aircomp_with_a_codec_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "-o", "wireless.access.scheme=aircomp", "-o", "codec=qsgd:16", "-o", "fl.rounds=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedwave: error: ") and "codec.uplink=fp32" in err and "Traceback" not in err
