"""Plug-ins by decorator, import path and entry point, for each family; in runs, the CLI and studies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tests.api.conftest import EXAMPLES, SMALL, subprocess_env

import fedwave
from fedwave import plugins
from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.attacks.registry import get_attack
from fedwave.testing import ContractError, check_aggregator

USER_MODULE = """
import torch
from torch import nn
from fedwave.sim.policies import SyncPolicy
from fedwave.server.aggregators import Aggregator


class TinyNet(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def no_arg_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def not_a_model(input_shape, num_classes):
    return 42


class MySync(SyncPolicy):
    name = "my_sync"


def coordinate_median(x, w, center):
    return x.median(dim=0).values


coordinate_median.robust = True


def first_update(x, w, center):
    return x[0]


def fake_attack(obs, server, cfg, *, rng, progress=None):
    raise RuntimeError("not run here")
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module ``user_plugins_<n>`` outside fedwave, importable in this process."""
    name = f"user_plugins_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.fixture
def entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_module: str) -> Iterator[None]:
    """An installed distribution (a dist-info on sys.path) declaring one plug-in per group."""
    dist = tmp_path / "fedwave_user_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fedwave-user-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(f"""
        [fedwave.codecs]
        int8 = int8_codec:Int8Codec
        [fedwave.models]
        tiny = {user_module}:TinyNet
        [fedwave.policies]
        my_sync = {user_module}:MySync
        [fedwave.aggregators]
        cmedian = {user_module}:coordinate_median
        [fedwave.attacks]
        fake = {user_module}:fake_attack
        """)
    )
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield


def test_import_path_model_policy_aggregator_attack(user_module: str) -> None:
    cfg = fedwave.make_config(
        SMALL,
        model={"name": f"{user_module}:TinyNet"},
        overrides={"wireless.policy.name": f"{user_module}:MySync"},
    )
    result = fedwave.run(cfg)
    sync = fedwave.run(SMALL, model={"name": f"{user_module}:TinyNet"})
    assert type(result.model).__name__ == "TinyNet"
    assert result.summary_dict["model_sha256"] == sync.summary_dict["model_sha256"]  # MySync is sync
    assert fedwave.build_model(f"{user_module}:no_arg_net", (1, 8, 8), 10)[1].in_features == 64
    agg = fedwave.get_aggregator(f"{user_module}:coordinate_median")
    assert agg.robust and check_aggregator(agg) == ["shapes", "consensus", "permutation", "robust"]
    assert AttackConfig(name=f"{user_module}:fake_attack").name.endswith("fake_attack")
    assert get_attack(f"{user_module}:fake_attack").__name__ == "fake_attack"


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"model": {"name": "user_plugins_x:Net"}}, ["model.name", "no module named 'user_plugins_x'"]),
        ({"model": {"name": "fedwave.models:NoSuchNet"}}, ["has no attribute 'NoSuchNet'"]),
        ({"codec": "fedwave.models:build_model"}, ["codec.uplink", "codec"]),
        ({"overrides": {"wireless.policy.name": "fedwave.models:build_model"}}, ["not a fedwave.sim"]),
        ({"attack": {"name": "user_plugins_y:atk"}}, ["attack", "no module named 'user_plugins_y'"]),
    ],
)
def test_bad_plugins_are_config_errors(keys: dict[str, object], words: list[str]) -> None:
    with pytest.raises(fedwave.ConfigError) as err:
        fedwave.make_config(**keys)  # type: ignore[arg-type]
    for word in words:
        assert word in str(err.value)


def test_a_builder_returning_no_module_fails_when_built(user_module: str) -> None:
    with pytest.raises(fedwave.ConfigError, match=r"returned int, not a torch\.nn\.Module"):
        fedwave.build_model(f"{user_module}:not_a_model", (1, 8, 8), 10)


def test_decorators_register_in_this_process(user_module: str) -> None:
    from fedwave.codecs.cast import FP16

    @fedwave.register_codec("half_for_test")
    def half() -> FP16:
        return FP16()

    @fedwave.register_model("tiny_for_test")
    def tiny(input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))

    @fedwave.register_aggregator("first_for_test")
    def first(x: torch.Tensor, w: torch.Tensor, center: torch.Tensor | None) -> torch.Tensor:
        return x[0]

    try:
        result = fedwave.run(SMALL, model={"name": "tiny_for_test"}, codec="half_for_test")
        assert result.config.codec.uplink == "half_for_test"
        fp32 = fedwave.run(SMALL, model={"name": "tiny_for_test"})
        assert fp32.rounds["bytes_up"].iloc[0] / result.rounds["bytes_up"].iloc[0] == pytest.approx(
            2, rel=0.02
        )
        with pytest.raises(ContractError, match="permutation: reordering the updates changes the aggregate"):
            check_aggregator("first_for_test")
        with pytest.raises(fedwave.ConfigError, match="is a built-in codec"):
            fedwave.register_codec("uniform")
    finally:
        plugins.unregister("codecs", "half_for_test")
        plugins.unregister("aggregators", "first_for_test")


def test_entry_points_give_short_names(entry_points: None) -> None:
    assert "int8" in plugins.plugin_names("codecs")
    assert type(fedwave.get_codec("int8")).__name__ == "Int8Codec"
    cfg = fedwave.make_config(SMALL, model={"name": "tiny"}, codec="int8")
    cfg = fedwave.make_config(cfg, overrides={"wireless.policy.name": "my_sync"})
    result = fedwave.run(cfg)
    assert type(result.model).__name__ == "TinyNet"
    assert (
        result.rounds["bytes_up"].iloc[0]
        < 0.3 * fedwave.run(SMALL, model={"name": "tiny"}).rounds["bytes_up"].iloc[0]
    )  # one byte per value instead of four
    assert fedwave.get_aggregator("cmedian").robust
    assert get_attack("fake").__name__ == "fake_attack"


def test_a_user_attack_registered_first_keeps_the_builtins() -> None:
    code = (
        "import fedwave\n"
        "@fedwave.register_attack('mine')\n"
        "def mine(obs, server, cfg, *, rng, progress=None): ...\n"
        "from fedwave.privacy.attacks.registry import attack_names\n"
        "print(sorted(attack_names()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.stdout.strip() == str(sorted(["analytic", "dlg", "idlg", "ig", "mine"])), out.stderr


@pytest.mark.parametrize("from_cwd", [False, True])
def test_fedwave_compare_runs_a_codec_by_import_path(tmp_path: Path, from_cwd: bool) -> None:
    """The CLI finds an import-path codec on PYTHONPATH, or in the current directory."""
    study = tmp_path / "study"
    args = [sys.executable, "-m", "fedwave.cli", "compare", "--no-report", "--study", str(study)]
    args += ["-o", "fl.rounds=2", "-o", "fl.num_ues=4", "-o", "model.name=mlp"]
    args += ["--vary", "codec=fp32,int8_codec:Int8Codec"]
    env = subprocess_env() if from_cwd else subprocess_env(EXAMPLES)
    out = subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=EXAMPLES if from_cwd else tmp_path
    )
    assert out.returncode == 0, out.stderr
    rounds = fedwave.load_study(study).rounds
    per_method = rounds.groupby("method")["bytes_up"].sum()
    assert 0.24 < per_method["codec=int8_codec:Int8Codec"] / per_method["codec=fp32"] < 0.26
