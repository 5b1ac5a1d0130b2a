"""Configuration: defaults, YAML, overrides, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fedwave.cli import main
from fedwave.config import Config, commented_yaml, load_config
from fedwave.errors import ConfigError


def test_defaults_are_the_demo_scenario() -> None:
    cfg = Config()
    assert cfg.data.dataset == "digits" and cfg.fl.num_ues == 20 and cfg.data.partition == "iid"
    assert cfg.wireless.access.scheme == "fdma" and cfg.wireless.cell.radius_m == 500
    assert cfg.user.user_type == "local_update" and cfg.user.local_epochs == 1


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["fl.rounds=3", "codec=uniform:8", "wireless.access.scheme=tdma"])
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path)
    assert again == cfg
    assert again.codec.uplink == "uniform:8" and again.fl.rounds == 3


def test_misspelt_key_names_it_and_suggests_nearest() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["fl.rnds=5"])
    text = str(err.value)
    assert "unknown key 'fl.rnds'" in text and "Did you mean 'fl.rounds'" in text


def test_unknown_section_suggests_nearest(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"wireles": {"cell": {}}}))
    with pytest.raises(ConfigError, match="Did you mean 'wireless'"):
        load_config(path)


def test_wrong_type_and_range_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"fl\.rounds.*integer.*'many'"):
        load_config(None, ["fl.rounds=many"])
    with pytest.raises(ConfigError, match=r"fl\.fraction.*less than or equal to 1"):
        load_config(None, ["fl.fraction=1.5"])
    with pytest.raises(ConfigError, match=r"data\.partition.*'iid'"):
        load_config(None, ["data.partition=random"])


def test_bad_codec_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"codec\.uplink.*uniform"):
        load_config(None, ["codec=unifrom:8"])


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("fl: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    path.write_text("- a list")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_override_needs_equals() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["fl.rounds"])


def test_print_config_has_every_section_with_comments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--print-config"]) == 0
    out = capsys.readouterr().out
    for section in ("data:", "fl:", "server:", "codec:", "wireless:", "engine:", "output:"):
        assert section in out
    assert "# local SGD learning rate" in out
    body = "\n".join(line.split("  #")[0] for line in out.splitlines() if not line.startswith("#"))
    assert Config.model_validate(yaml.safe_load(body)) == Config()


def test_commented_yaml_is_loadable() -> None:
    text = commented_yaml(Config())
    assert Config.model_validate(yaml.safe_load(text)) == Config()


def test_cli_reports_config_errors_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-o", "fl.rnds=5"]) == 2
    err = capsys.readouterr().err
    assert "fedwave: error:" in err and "Traceback" not in err and "fl.rounds" in err
