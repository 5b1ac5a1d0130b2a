"""The ``dp`` section and ``fl.sampling``: defaults, valid combinations, and errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedwave.config import Config, commented_yaml, load_config
from fedwave.errors import ConfigError

CLIENT = ["dp.level=client", "fl.sampling=poisson", "fl.fraction=0.25"]


def test_defaults_leave_dp_off_and_sampling_fixed() -> None:
    cfg = Config()
    assert cfg.dp.level == "off" and cfg.fl.sampling == "fixed"
    assert cfg.dp.delta == 1e-5 and cfg.dp.accountant == "rdp" and cfg.dp.placement == "central"
    text = commented_yaml(cfg)
    assert "dp:" in text and "noise_multiplier: null" in text and "sampling: fixed" in text


def test_valid_settings_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = load_config(
        None, [*CLIENT, "dp.noise_multiplier=1.1", "dp.placement=distributed", "dp.accountant=pld"]
    )
    path = tmp_path / "dp.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg
    # Fixed sampling of every UE is allowed: q = 1, nothing is sampled, the accounting is exact.
    assert load_config(None, ["dp.level=client", "dp.noise_multiplier=1"]).fl.per_round() == 20
    assert load_config(None, ["dp.level=sample", "dp.target_epsilon=3", "model.name=lenet"]).dp.clip == 1.0
    # clip null + z 0: the exact no-op configuration (for checking DP against the plain run).
    assert load_config(None, [*CLIENT, "dp.clip=null", "dp.noise_multiplier=0"]).dp.clip is None


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["dp.noise_multiplier=-1"], r"dp\.noise_multiplier: .*greater than or equal to 0"),
        (["dp.clip=0"], r"dp\.clip: .*greater than 0"),
        (["dp.clip=-2"], r"dp\.clip: .*greater than 0"),
        (["dp.clip=.inf"], r"dp\.clip: must be a finite number; NaN and infinity are not allowed"),
        (["dp.delta=1"], r"dp\.delta: .*less than 1"),
        (["dp.delta=0"], r"dp\.delta: .*greater than 0"),
        (["dp.target_epsilon=0"], r"dp\.target_epsilon: .*greater than 0"),
        (["dp.level=global"], r"dp\.level: .*'off', 'client' or 'sample'"),
        (["dp.accountant=moments"], r"dp\.accountant: .*'rdp', 'prv' or 'pld'"),
        (["dp.placement=local"], r"dp\.placement: .*'central' or 'distributed'"),
        (["dp.epsilon=1"], r"unknown key 'dp\.epsilon'"),
        (["fl.sampling=random"], r"fl\.sampling: .*'fixed' or 'poisson'"),
        ([*CLIENT], r"dp\.level=client needs dp\.noise_multiplier"),
        (
            [*CLIENT, "dp.noise_multiplier=1", "dp.target_epsilon=2"],
            r"dp\.target_epsilon \(2\.0\) and dp\.noise_multiplier \(1\.0\) are both set",
        ),
        ([*CLIENT, "dp.clip=null", "dp.noise_multiplier=1"], r"dp\.clip is null .* z \* clip"),
        ([*CLIENT, "dp.clip=null", "dp.target_epsilon=2"], r"dp\.clip is null"),
        (
            ["dp.level=client", "dp.noise_multiplier=1", "fl.fraction=0.25"],
            r"dp\.level=client with fl\.sampling=fixed selects 5 of 20 UEs.*fl\.sampling=poisson",
        ),
        (
            ["fl.sampling=poisson", "fl.clients_per_round=4"],
            r"fl\.sampling=poisson .* fl\.clients_per_round \(4\)",
        ),
        (
            ["dp.level=sample", "dp.noise_multiplier=1", "dp.placement=distributed"],
            r"dp\.placement=distributed applies to dp\.level=client",
        ),
        (
            ["dp.level=sample", "dp.noise_multiplier=1", "model.name=resnet"],
            r"dp\.level=sample: model\.name 'resnet' has BatchNorm.*GroupNorm",
        ),
    ],
)
def test_bad_dp_settings_fail_naming_the_key(overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, overrides)


def test_dp_off_ignores_dp_only_settings() -> None:
    """With dp.level=off the DP keys are inert, and BatchNorm models stay allowed."""
    cfg = load_config(None, ["model.name=resnet", "dp.noise_multiplier=1", "dp.target_epsilon=2"])
    assert cfg.dp.level == "off"
