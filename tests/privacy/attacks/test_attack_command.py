"""``fedwave attack``: run directory, determinism, codec and local noise on the path, errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from fedwave.cli import main
from fedwave.config import load_config
from fedwave.privacy.attacks.runner import attack_trial, attacked_model, run_attack_experiment

FAST = [
    "-o",
    "model.name=lenet",
    "-o",
    "attack.dlg.iterations=4",
    "-o",
    "attack.trials=2",
    "-o",
    "attack.batch=2",
]


def test_attack_command_writes_the_run_directory(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["attack", *FAST, "-o", "attack.name=dlg", "-q", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"config.yaml", "metrics.csv", "summary.json", "grid.png"}
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 4 and list(rows[0]) == [
        "trial",
        "sample",
        "label",
        "predicted_label",
        "label_correct",
        "mse",
        "psnr",
        "ssim",
    ]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("psnr_median", "ssim_median", "label_accuracy", "wall_s", "threat_model"):
        assert key in summary
    assert summary["threat_model"]["uplink_codec"] == "fp32"
    assert (out / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PSNR" in capsys.readouterr().out


def test_same_config_same_metrics_bit_for_bit(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert (
            main(
                [
                    "attack",
                    *FAST,
                    "-o",
                    "attack.name=ig",
                    "-o",
                    "attack.ig.iterations=5",
                    "-q",
                    "--out",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()


def test_codec_and_local_noise_change_what_arrives() -> None:
    base = ["model.name=lenet", "attack.name=analytic", "attack.trials=1"]
    cfg = load_config(None, [*base, "model.name=mlp"])
    model, ds = attacked_model(cfg)
    clean = attack_trial(cfg, model, ds, 0)
    assert clean.samples[0].psnr >= 60
    quantised = load_config(None, [*base, "model.name=mlp", "codec=uniform:4"])
    q = attack_trial(quantised, model, ds, 0)
    assert q.uplink_bytes < clean.uplink_bytes / 4
    assert q.samples[0].psnr < clean.samples[0].psnr - 10
    noisy = load_config(None, [*base, "model.name=mlp", "local_privacy.gradient_noise=0.1"])
    assert attack_trial(noisy, model, ds, 0).samples[0].psnr < clean.samples[0].psnr - 10


def test_attack_at_round_uses_the_trained_global_model() -> None:
    over = ["model.name=mlp", "fl.num_ues=2", "attack.at_round=1", "attack.name=analytic", "attack.trials=1"]
    cfg = load_config(None, over)
    trained, _ = attacked_model(cfg)
    untrained, _ = attacked_model(load_config(None, [*over[:-3], "attack.name=analytic"]))
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), untrained.parameters()))
    run = run_attack_experiment(cfg)
    assert run.summary["threat_model"]["at_round"] == 1 and run.summary["psnr_median"] >= 60


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("attack.name=dgl", "unknown attack 'dgl'"),
        ("attack.name=analytic", "first layer is fully connected"),
        ("attack.user.provide_num_data_points=false", "number of samples"),
    ],
)
def test_bad_attack_settings_exit_2_with_a_message(
    tmp_path: Path, capsys, override: str, message: str
) -> None:
    rc = main(["attack", *FAST, "-o", override, "-q", "--out", str(tmp_path / "r")])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_attack_on_the_final_model_trains_all_rounds() -> None:
    over = ["model.name=mlp", "fl.num_ues=2", "fl.rounds=2", "attack.name=dlg", "attack.trials=1"]
    over += ["attack.dlg.iterations=2"]
    final = run_attack_experiment(load_config(None, [*over, "attack.at_round=final"]))
    two = run_attack_experiment(load_config(None, [*over, "attack.at_round=2"]))
    untrained = run_attack_experiment(load_config(None, over))
    assert final.summary["threat_model"]["model_rounds"] == 2
    assert untrained.summary["threat_model"]["model_rounds"] == 0
    mse = [run.summary["mse_median"] for run in (final, two, untrained)]
    assert mse[0] == mse[1] != mse[2]  # the same trained model; the untrained one gives another error


def test_client_dp_is_applied_as_the_ue_applies_it_and_sample_dp_is_refused(tmp_path: Path, capsys) -> None:
    """Central client-level DP clips but the BS adds the noise itself: the analytic attack (scale
    invariant) still reconstructs exactly. Distributed placement adds each UE's share (z S / sqrt(n)):
    the attack fails. DP-SGD at sample level is refused, by name."""
    from fedwave.privacy.attacks.leakage import measure_leakage
    from fedwave.privacy.attacks.runner import client_dp_view

    base = ["model.name=mlp", "attack.name=analytic", "attack.trials=1", "dp.level=client"]
    base += ["dp.clip=0.01", "dp.noise_multiplier=1", "fl.sampling=poisson", "fl.fraction=0.25"]
    central = load_config(None, base)
    model, ds = attacked_model(central)
    assert attack_trial(central, model, ds, 0).samples[0].psnr >= 60
    distributed = load_config(None, [*base, "dp.placement=distributed"])
    assert attack_trial(distributed, model, ds, 0).samples[0].psnr < 30
    update = [torch.full((100,), 1.0)]  # norm 10: clipped to 0.01, then a share of std 0.01 / sqrt(5)
    clipped = client_dp_view(central, update, 0)[0]
    assert float(clipped.norm()) == pytest.approx(0.01, rel=1e-5)
    noisy = client_dp_view(distributed, update, 0)[0] - clipped
    assert float(noisy.std()) == pytest.approx(0.01 / 5**0.5, rel=0.3)  # 100 draws: sd of the sd ~7%
    sample = ["dp.level=sample", "dp.noise_multiplier=1.0"]
    rc = main(["attack", *FAST, *(a for o in sample for a in ("-o", o)), "-q", "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "dp.level=sample: the attacked user" in capsys.readouterr().err
    record = measure_leakage(load_config(None, [*sample, "attack.name=idlg", "attack.trials=1"]))
    assert record.status == "not applicable" and "AttackNotApplicable: dp.level=sample" in str(record.error)
    assert math.isnan(record.psnr_median) and record.grid_png is None
