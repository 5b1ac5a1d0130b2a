"""Settings whose epsilon would not hold are refused before training, naming the keys and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedwave.cli import main
from fedwave.config import load_config
from fedwave.errors import ConfigError

CLIENT = ["dp.level=client", "dp.noise_multiplier=1", "fl.sampling=poisson", "fl.fraction=0.25"]
FULL = ["dp.level=client", "dp.noise_multiplier=1"]  # fixed sampling of every UE (q = 1)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            ["fl.sampling=poisson", "wireless.policy.name=async"],
            r"fl\.sampling=poisson .* wireless\.policy\.name=async",
        ),
        ([*FULL, "wireless.policy.name=async"], r"dp\.level=client with wireless\.policy\.name=async"),
        (
            [*CLIENT, "wireless.event_trigger.enabled=true", "wireless.event_trigger.on_skip=reuse"],
            r"wireless\.event_trigger\.enabled=true: .*on_skip=reuse",
        ),
        (
            [*CLIENT, "dp.placement=distributed", "codec=uniform:8"],
            r"dp\.placement=distributed with the lossy uplink codec 'uniform:8'.*dp\.placement=central",
        ),
        (
            [*CLIENT, "dp.placement=distributed", "server.norm_bound=2"],
            r"dp\.placement=distributed with server\.norm_bound=2\.0",
        ),
        ([*CLIENT, "model.name=resnet"], r"dp\.level=client: model\.name 'resnet' has buffers .*GroupNorm"),
        (
            ["dp.level=sample", "dp.noise_multiplier=1", "local_privacy.gradient_noise=0.1"],
            r"dp\.level=sample .* local_privacy\.gradient_noise=0\.1",
        ),
    ],
)
def test_unaccountable_combinations_are_refused(overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, overrides)


def test_accountable_combinations_pass() -> None:
    load_config(None, [*CLIENT, "dp.placement=distributed", "codec=ef(fp32)"])  # lossless: allowed
    load_config(None, [*CLIENT, "codec=qsgd:4", "server.norm_bound=2"])  # central: the BS clips again
    load_config(None, [*CLIENT, "local_privacy.gradient_noise=0.1"])  # client level: labelled unaccounted
    deadline = ["wireless.policy.name=deadline", "wireless.policy.deadline_s=1"]
    load_config(None, ["fl.sampling=poisson", "fl.fraction=0.3", *deadline])  # Poisson without DP


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["dp.noise_multiplier=-1"], "dp.noise_multiplier"),
        (["dp.clip=0"], "dp.clip"),
        (["dp.delta=1"], "dp.delta"),
        (["dp.target_epsilon=3"], "dp.target_epsilon"),
        (["model.name=resnet"], "model.name"),
        (["dp.stop_at_epsilon=0.001"], "dp.stop_at_epsilon"),
    ],
)
def test_fedwave_run_fails_before_training_naming_the_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, overrides: list[str], key: str
) -> None:
    out = tmp_path / "run"
    args = [a for o in [*CLIENT, *overrides] for a in ("-o", o)]
    assert main(["run", *args, "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not out.exists()  # nothing was trained or written
