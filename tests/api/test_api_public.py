"""The top-level API: names, configs from every source, runs and studies as DataFrames, the CLI over it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from tests.api.conftest import SMALL, subprocess_env

import fedwave
from fedwave.cli import main

PUBLIC = [
    "Accountant", "Aggregator", "AttackResult", "Codec", "CodecState", "Config", "ConfigError", "ConfigLike",
    "DatasetUnavailable", "FedwaveError", "PayloadError", "Policy", "PrivacyPlan", "RunResult",
    "SelectionContext", "Study",
    "attack", "build_model", "compare", "epsilons", "get_aggregator", "get_codec", "load_study",
    "make_accountant", "make_config", "privacy_plan", "register_aggregator", "register_attack",
    "register_codec", "register_model", "register_policy", "register_selection", "run",
]  # fmt: skip


def test_public_names_exist() -> None:
    assert set(PUBLIC) <= set(fedwave.__all__)
    for name in fedwave.__all__:
        assert getattr(fedwave, name) is not None, name
        assert name in dir(fedwave)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = fedwave.nope  # type: ignore[attr-defined]


def test_import_fedwave_does_not_import_torch() -> None:
    code = "import sys, fedwave; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_make_config_from_every_source(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("fl:\n  rounds: 5\ncodec: uniform:8\n")
    configs = [
        fedwave.make_config(path),
        fedwave.make_config(str(path)),
        fedwave.make_config({"fl": {"rounds": 5}, "codec": "uniform:8"}),
        fedwave.make_config(yaml_text="fl: {rounds: 5}\ncodec: uniform:8"),
        fedwave.make_config(fl={"rounds": 5}, codec="uniform:8"),
        fedwave.make_config(overrides={"fl.rounds": 5, "codec": "uniform:8"}),
        fedwave.make_config(overrides=["fl.rounds=5", "codec=uniform:8"]),
        fedwave.make_config(fedwave.make_config(codec="uniform:8"), fl={"rounds": 5}),
    ]
    for cfg in configs:
        assert (cfg.fl.rounds, cfg.codec.uplink, cfg.codec.downlink) == (5, "uniform:8", "fp32")
        assert cfg.fl.num_ues == fedwave.Config().fl.num_ues  # other keys of the section keep defaults
    assert fedwave.Config().fl.rounds != 5


def test_keywords_merge_into_the_source_section() -> None:
    cfg = fedwave.make_config({"fl": {"rounds": 5, "num_ues": 7}}, fl={"rounds": 3})
    assert (cfg.fl.rounds, cfg.fl.num_ues) == (3, 7)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"fl": {"roundz": 5}}, ["fl.roundz", "Did you mean 'fl.rounds'"]),
        ({"fl": {"rounds": 0}}, ["fl.rounds", "greater than or equal to 1"]),
        ({"overrides": ["fl.rounds"]}, ["must look like key=value"]),
        ({"yaml_text": "- a list"}, ["must be a mapping"]),
        ({"model": {"name": "nosuch.module:Net"}}, ["model.name", "nosuch.module"]),
    ],
)
def test_make_config_errors_name_the_key(kwargs: dict[str, object], words: list[str]) -> None:
    with pytest.raises(fedwave.ConfigError) as err:
        fedwave.make_config(**kwargs)  # type: ignore[arg-type]
    for word in words:
        assert word in str(err.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(fedwave.ConfigError, match="does not exist"):
        fedwave.make_config(tmp_path / "missing.yaml")


def test_run_returns_dataframes_matching_the_cli(tmp_path: Path) -> None:
    result = fedwave.run(SMALL, out=tmp_path / "api")
    assert isinstance(result, fedwave.RunResult)
    assert list(result.rounds["round"]) == [0, 1]
    assert result.rounds["t_end"].is_monotonic_increasing and result.rounds["t_end"].iloc[0] > 0
    assert 0.3 < result.rounds["accuracy"].iloc[-1] <= 1.0  # an untrained model is near 0.1
    assert len(result.ue_events) == int(result.rounds["selected"].sum()) == 8
    assert set(result.ue_events["status"]) == {"arrived"}
    assert result.summary.shape[0] == 1
    assert result.summary["final_accuracy"].iloc[0] == result.rounds["accuracy"].iloc[-1]
    assert result.summary["bytes_up"].iloc[0] == result.ue_events["bytes_up"].sum()
    assert result.model is not None and (tmp_path / "api" / "summary.json").is_file()
    # the CLI runs the same function: the same numbers, bit for bit
    args = ["run", "-q", "--out", str(tmp_path / "cli"), "-o", "fl.rounds=2", "-o", "fl.num_ues=4"]
    assert main([*args, "-o", "model.name=mlp"]) == 0
    cli_rounds = pd.read_csv(tmp_path / "cli" / "rounds.csv")
    assert list(cli_rounds["accuracy"]) == list(result.rounds["accuracy"])
    assert list(cli_rounds["bytes_up"]) == list(result.rounds["bytes_up"])


def test_run_with_a_model_class_and_determinism() -> None:
    from torch import nn

    class Linear(nn.Module):
        def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
            super().__init__()
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.fc(x.flatten(1))

    a = fedwave.run(SMALL, model=Linear)
    b = fedwave.run(SMALL, model=Linear)
    assert a.config.model.name.endswith("Linear")
    assert isinstance(a.model, Linear)
    assert a.summary_dict["model_sha256"] == b.summary_dict["model_sha256"]
    pd.testing.assert_frame_equal(a.rounds, b.rounds)
    mlp = fedwave.run(SMALL)
    assert mlp.summary_dict["model_sha256"] != a.summary_dict["model_sha256"]
    assert mlp.rounds["bytes_up"].iloc[0] > 3 * a.rounds["bytes_up"].iloc[0]  # 64x10 vs the 128-unit MLP


def test_compare_and_load_study(tmp_path: Path) -> None:
    study = fedwave.compare(SMALL, vary={"codec": ["fp32", "uniform:8"]}, study_dir=tmp_path / "s")
    assert isinstance(study, fedwave.Study)
    assert sorted(study.runs["method"]) == ["codec=fp32", "codec=uniform:8"]
    assert len(study.rounds) == 4
    per_method = study.rounds.groupby("method")["bytes_up"].sum()
    ratio = per_method["codec=uniform:8"] / per_method["codec=fp32"]
    assert 0.24 < ratio < 0.27  # 8 of 32 bits per value, plus headers
    again = fedwave.load_study(tmp_path / "s")
    pd.testing.assert_frame_equal(again.rounds, study.rounds)
    finished: list[str] = []
    fedwave.compare(
        SMALL,
        vary={"codec": ["fp32", "uniform:8"]},
        study_dir=tmp_path / "s",
        on_run=lambda run, what, info: finished.append(what),
    )
    assert finished == ["done already", "done already"]


def test_epsilons_and_privacy_plan() -> None:
    keys = {"fl": {"rounds": 5}, "dp": {"level": "client", "noise_multiplier": 1.0}}
    eps = fedwave.epsilons(**keys)
    assert list(eps["round"]) == [1, 2, 3, 4, 5]
    assert eps["epsilon"].is_monotonic_increasing and eps["epsilon"].iloc[0] > 0
    plan = fedwave.privacy_plan(**keys)
    assert plan.noise_multiplier == 1.0 and plan.rounds == 5
    more_noise = fedwave.epsilons(fl={"rounds": 5}, dp={"level": "client", "noise_multiplier": 2.0})
    assert (more_noise["epsilon"] < eps["epsilon"]).all()
    acc = fedwave.make_accountant("rdp")
    acc.step(1.0, 1.0, steps=5)
    assert acc.get_epsilon(1e-5) == pytest.approx(eps["epsilon"].iloc[-1], rel=1e-9)
    with pytest.raises(fedwave.ConfigError, match="nothing to account"):
        fedwave.epsilons()


def test_attack_returns_per_sample_metrics() -> None:
    leak = fedwave.attack(model={"name": "mlp"}, attack={"name": "analytic", "trials": 1, "batch": 1})
    assert isinstance(leak, fedwave.AttackResult)
    assert len(leak.samples) == 1
    # one sample through a first linear layer with bias: the analytic attack recovers it exactly
    assert leak.samples["psnr"].iloc[0] > 60
