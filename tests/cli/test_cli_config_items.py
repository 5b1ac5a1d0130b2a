"""Issue 9, "Configuration and CLI": each bad input fails before any training, exit 2, in the user's keys.

One test (or group) per item of the issue; every test here failed on the code before the fix.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from fedwave.cli import main
from fedwave.config import Config, load_config
from fedwave.errors import ConfigError

GRID = ["-o", "fl.rounds=1", "-o", "data.max_train=120"]
TINY = [*GRID, "-o", "fl.num_ues=4", "-o", "model.name=mlp"]


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI; assert exit status 2 and a one-line 'fedwave: error:' message; return stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedwave: error: ") and "Traceback" not in err
    return err


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to build or train a simulation fail the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a simulation was built although the input is bad")

    monkeypatch.setattr("fedwave.fl.study.build_simulation", refuse)
    monkeypatch.setattr("fedwave.fl.run.Simulation.run_rounds", refuse)


# ----------------------------------------------------------------------------- 1. one loader for files


def test_item1_compare_yaml_syntax_error_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("fl:\n  rounds: [1, 2\n")
    err = _fails(capsys, ["compare", str(bad), "--study", str(tmp_path / "s")])
    assert f"config file '{bad}' is not valid YAML" in err and "line 3" in err
    assert not (tmp_path / "s").exists()


def test_item1_compare_top_level_list_with_override_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    bad = tmp_path / "list.yaml"
    bad.write_text("- fl\n- rounds\n")
    err = _fails(capsys, ["compare", str(bad), "-o", "fl.rounds=1", "--study", str(tmp_path / "s")])
    assert f"config file '{bad}': the top level must be a mapping of sections" in err and "got a list" in err


BAD_FILES: dict[str, tuple[bytes | None, str]] = {
    "syntax": (b"fl: {rounds: 1\n", "is not valid YAML"),
    "list": (b"- 1\n", "the top level must be a mapping"),
    "scalar": (b"just text\n", "got a string"),
    "latin1": ("fl:\n  rounds: 1 # caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    "duplicate": (b"fl: {rounds: 1}\nfl: {lr: 0.1}\n", "the key 'fl' appears twice at line 2"),
    "two documents": (b"fl: {rounds: 1}\n---\nfl: {rounds: 2}\n", "is not valid YAML"),
    "directory": (None, "is a directory"),
}


@pytest.mark.parametrize("command", ["run", "compare", "cell", "partition"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_item1_every_command_reads_files_with_one_loader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None, command: str, case: str
) -> None:
    content, needle = BAD_FILES[case]
    path = tmp_path / "c.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    extra = ["--study", str(tmp_path / "s")] if command == "compare" else []
    err = _fails(capsys, [command, str(path), *extra])
    assert f"config file '{path}'" in err and needle in err


# ------------------------------------------------------------------------------------- 2. devices


def test_item2_unknown_device_is_refused_with_the_allowed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(capsys, ["run", "-q", "-o", "engine.device=banana", "-o", "fl.rounds=1"])
    assert "engine.device: 'banana' is not a device; use cpu, cuda, cuda:N (N = GPU index) or mps" in err


def test_item2_device_types_that_cannot_train_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"engine\.device: device type 'meta' cannot train models"):
        load_config(None, ["engine.device=meta"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_item2_cuda_without_cuda_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(capsys, ["run", "-q", "-o", "engine.device=cuda", "-o", "fl.rounds=1"])
    assert "engine.device: 'cuda' asks for CUDA but" in err and "use engine.device=cpu" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_item2_missing_gpu_index_is_refused() -> None:
    n = torch.cuda.device_count()
    assert load_config(None, ["engine.device=cuda:0"]).engine.device == "cuda:0"
    with pytest.raises(ConfigError, match=f"asks for GPU {n} but this machine has {n} GPU"):
        load_config(None, [f"engine.device=cuda:{n}"])


# --------------------------------------------------------------------------------- 3. finite numbers


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("wireless.cell.noise_psd_dbm_hz", ".nan", ".nan"),
        ("wireless.access.bandwidth_hz", ".inf", ".inf"),
        ("fl.lr", "-.inf", "-.inf"),
        ("fl.lr", "nan", "'nan'"),
        ("fl.lr", "1e400", "'1e400'"),
        ("wireless.access.shares", "[1, .inf]", ".inf"),
        ("wireless.cell.ue_power_dbm", "[20, .nan]", ".nan"),
    ],
)
def test_item3_non_finite_numbers_are_refused(
    capsys: pytest.CaptureFixture[str], key: str, value: str, shown: str
) -> None:
    err = _fails(capsys, ["run", "-q", "-o", f"{key}={value}"])
    assert f"{key}" in err and "must be a finite number; NaN and infinity are not allowed" in err
    assert f"(got {shown})" in err


def test_item3_infinite_bandwidth_no_longer_runs_to_inf_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: bandwidth +inf ran and reported 'simulated time inf s' with exit 0."""
    err = _fails(capsys, ["run", "-q", *TINY, "-o", "wireless.access.bandwidth_hz=.inf"])
    assert "wireless.access.bandwidth_hz: must be a finite number" in err


# ------------------------------------------------------------------------------- 4. booleans, types


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("fl.batch_size", "true"),
        ("fl.lr", "false"),
        ("fl.clients_per_round", "true"),
        ("wireless.access.shares", "[1, true]"),
        ("wireless.cell.positions_m", "[[100, true]]"),
    ],
)
def test_item4_booleans_are_not_numbers(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key) + ": must (be a number|hold numbers), not"):
        load_config(None, [f"{key}={value}"])


def test_item4_lists_fill_tuples_and_numeric_strings_are_numbers() -> None:
    cfg = load_config(
        None, ["fl.num_ues=2", "wireless.cell.positions_m=[[100, 0], [0, 250.5]]", "fl.lr=1e-3"]
    )
    assert cfg.wireless.cell.positions_m == [(100.0, 0.0), (0.0, 250.5)]
    assert cfg.fl.lr == 0.001  # PyYAML reads 1e-3 (no dot) as a string; it is still the number 0.001
    assert load_config(None, ["fl.batch_size='32'"]).fl.batch_size == 32


# -------------------------------------------------------------------------------------- 5. --vary seed


def test_item5_vary_seed_is_refused_and_points_to_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    err = _fails(capsys, ["compare", *TINY, "--vary", "seed=3,4", "--study", str(tmp_path / "s")])
    assert "--vary seed: seeds are not methods: use --seeds N" in err and "-o seed=S" in err
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- 6. one key, two names


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--vary", "codec=fp32", "--vary", "codec.uplink=fp16"], "--vary codec and --vary codec.uplink"),
        (["--vary", "codec.uplink=fp16", "--vary", "codec=fp32,sign"], "set the same key (codec.uplink)"),
        (["--vary", "wireless.access=x", "--vary", "wireless.access.scheme=tdma"], "(wireless.access)"),
        (["-o", "codec=fp16", "--vary", "codec.uplink=fp32,sign"], "-o codec=fp16 would be replaced"),
        (["-o", "codec.uplink=fp16", "--vary", "codec=fp32,sign"], "by every value of --vary codec"),
    ],
)
def test_item6_one_key_under_two_names_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None, argv: list[str], needle: str
) -> None:
    err = _fails(capsys, ["compare", *TINY, *argv, "--study", str(tmp_path / "s")])
    assert needle in err


def test_item6_codec_shorthand_keeps_the_downlink() -> None:
    from fedwave.fl.study import plan_study

    plan = plan_study({"codec": {"downlink": "fp16"}}, {"codec": ["fp32", "sign"]}, 1)
    assert [(r.config.codec.uplink, r.config.codec.downlink) for r in plan] == [
        ("fp32", "fp16"),
        ("sign", "fp16"),
    ]
    assert load_config(None, ["codec.downlink=bf16", "codec=sign"]).codec.downlink == "bf16"


# --------------------------------------------------------------------------------- 7. grid validation


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--vary", "model.name=mlp,banana"], "model.name: unknown model 'banana'"),
        (
            [
                "-o",
                "wireless.policy.name=first_k",
                "-o",
                "fl.clients_per_round=3",
                "--vary",
                "wireless.policy.k=2,5",
            ],
            "wireless.policy.k=5 exceeds",
        ),
        (
            ["--vary", "data.dataset=digits,cifar10"],
            "run 'data.dataset=cifar10', seed 0 cannot start: cifar10",
        ),
        (["--vary", "fl.num_ues=4,5000"], "fl.num_ues=5000"),
        (["--vary", "codec=fp32,uniform:9"], "codec.uplink: uniform: bits must be an integer in 1..8"),
        (["--vary", "wireless.cell.positions_m=[[100,0]]"], "wireless.cell.positions_m has 1 positions"),
    ],
)
def test_item7_bad_later_grid_point_fails_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None, argv: list[str], needle: str
) -> None:
    err = _fails(capsys, ["compare", *GRID, *argv, "--study", str(tmp_path / "s")])
    assert needle in err
    assert not (tmp_path / "s").exists()


def test_item7_grid_that_sets_policy_k_only_through_vary_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The base alone lacks wireless.policy.k (first_k needs it); every grid point has it: valid."""
    planned: list[Any] = []

    def record(study_dir: Path, base: Any, vary: Any, seeds: int, **hooks: Any) -> list[Any]:
        from fedwave.fl.study import plan_study

        planned.extend(plan_study(base, vary, seeds))
        return planned

    monkeypatch.setattr("fedwave.fl.study.run_study", record)
    monkeypatch.setattr("fedwave.cli_study._summarize", lambda *a, **k: 0)
    argv = ["compare", *TINY, "-o", "wireless.policy.name=first_k", "-o", "fl.clients_per_round=3"]
    argv += ["--vary", "wireless.policy.k=2,3", "--seeds", "2", "--study", str(tmp_path / "s")]
    assert main(argv) == 0, capsys.readouterr().err
    assert [(r.config.wireless.policy.k, r.seed) for r in planned] == [(2, 0), (2, 1), (3, 0), (3, 1)]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["wireless.policy.name=first_k", "wireless.policy.k=21"], "wireless.policy.k=21 exceeds"),
        (["wireless.policy.name=async", "wireless.policy.concurrency=21"], "wireless.policy.concurrency=21"),
        (["wireless.cell.positions_m=[[100, 0]]"], "wireless.cell.positions_m has 1 positions"),
        (["wireless.cell.ue_power_dbm=[20, 21]"], "wireless.cell.ue_power_dbm lists 2 powers"),
        (["wireless.access.shares=[1, 2, 3]"], "wireless.access.shares lists 3 shares"),
        (["model.name=resnett"], "model.name: unknown model 'resnett'. Did you mean 'resnet'?"),
    ],
)
def test_item7_constraints_are_in_the_config_so_run_gets_them(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert needle in str(err.value)


def test_item7_policy_error_says_how_many_ues_are_selected() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["wireless.policy.name=first_k", "wireless.policy.k=6", "fl.fraction=0.25"])
    assert "wireless.policy.k=6 exceeds" in str(err.value)
    assert "5 UEs selected per round: fl.fraction=0.25 x fl.num_ues=20" in str(err.value)


# -------------------------------------------------------------------------- 8. no orphan run directory


def test_item8_run_that_cannot_be_built_leaves_no_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["run", *TINY, "-o", "data.dataset=cifar10", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("fedwave: error: cifar10: no root given")
    assert captured.out == ""  # no progress bar for a run that never started
    assert not out.exists()


def test_item8_run_directory_is_written_once_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["run", "-q", *TINY, "--out", str(out)]) == 0
    rows = (out / "rounds.csv").read_text().splitlines()
    assert len(rows) == 2 and (out / "summary.json").is_file()


# ------------------------------------------------------------------------- 9. paths and user's keys


@pytest.mark.parametrize("command", ["run", "compare"])
def test_item9_device_file_is_not_reported_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    err = _fails(
        capsys, [command, "/dev/null", *(["--study", str(tmp_path / "s")] if command == "compare" else [])]
    )
    assert "config file '/dev/null' is not a regular file" in err and "does not exist" not in err


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["codec=banana"], "codec.uplink: unknown codec 'banana'"),
        (["fl=3"], "fl: is a section: give a mapping of its keys (num_ues, rounds,"),
        (["fl.num_ues=5000", "fl.rounds=1"], "fl.num_ues=5000 exceeds the 1438 samples"),
        (
            ["data.partition=shards", "data.shards_per_user=1000"],
            "data.shards_per_user must be in 1..N/fl.num_ues",
        ),
        (["wireless.devices.profile=classes"], "wireless.devices.profile is 'classes'"),
        (["wireless.cell.ue_power_dbm=[20, .nan]"], "wireless.cell.ue_power_dbm[1]: must be a finite number"),
        (["wireless.cell.ue_power_dbm=99"], "wireless.cell.ue_power_dbm: 99.0 dBm is outside [-50, 60] dBm"),
        (["wireless.access.shares=[]"], "wireless.access.shares is empty"),
        (
            ["wireless.devices.distribution.kind=uniform"],
            "wireless.devices.distribution: kind 'uniform' needs both 'low' and 'high'",
        ),
    ],
)
def test_item9_errors_name_the_users_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None, overrides: list[str], needle: str
) -> None:
    argv = ["run", "-q", "--out", str(tmp_path / "r")]
    for o in overrides:
        argv += ["-o", o]
    err = _fails(capsys, argv)
    assert needle in err
    for internal in ("(top level)", "num_users", "FLConfig", "list[float]", ".float:", "Field required"):
        assert internal not in err
    assert "devices.distribution: devices.distribution" not in err and ": ue_power_dbm:" not in err


def test_numbers_given_for_text_fields_are_text() -> None:
    assert load_config(None, ["output.name=2024"]).output.name == "2024"


def test_defaults_still_validate() -> None:
    cfg = Config()
    assert cfg.engine.device == "cpu" and math.isfinite(cfg.wireless.access.bandwidth_hz)
