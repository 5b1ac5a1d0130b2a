"""A corpus of bad configurations, overrides and command lines: each one exits 2 before any training,
prints one ``fedwave: error:`` message naming the offending key or file, and never a traceback.

The schema-driven tests walk every section of :class:`~fedwave.config.Config`, so a section added later
is covered without editing this file.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from fedwave.cli import main
from fedwave.config import Config, load_config
from fedwave.configbase import FloatOrInf, Section
from fedwave.errors import ConfigError

FILES = {
    "broken.yaml": b"fl:\n  rounds: [1, 2\n",
    "list.yaml": b"- fl\n- data\n",
    "latin1.yaml": "fl: {lr: 0.1}  # caf\xe9\n".encode("latin-1"),
    "dup.yaml": b"fl: {rounds: 1}\nfl: {lr: 0.2}\n",
    "deep.yaml": b"fl:\n  rounds: 1\n  extra:\n    deeper: 1\n",
    "classes.yaml": (
        b"wireless:\n  devices:\n    profile: classes\n"
        b"    classes:\n      - {name: a, share: 1.0, speed: 2}\n"
    ),
    "flscalar.yaml": b"fl: 3\n",
}

#: (id, argv with {d} = a scratch directory holding FILES, words the message must contain)
CORPUS: list[tuple[str, list[str], list[str]]] = [
    # files
    ("yaml syntax", ["run", "{d}/broken.yaml"], ["broken.yaml", "not valid YAML", "line 3"]),
    ("top-level list", ["compare", "{d}/list.yaml", "-o", "fl.rounds=1"], ["list.yaml", "mapping"]),
    ("not utf-8", ["run", "{d}/latin1.yaml"], ["latin1.yaml", "not UTF-8"]),
    ("duplicate key", ["run", "{d}/dup.yaml"], ["dup.yaml", "'fl' appears twice"]),
    ("missing file", ["run", "{d}/nope.yaml"], ["nope.yaml", "does not exist"]),
    ("directory", ["compare", "{d}"], ["is a directory"]),
    ("device file", ["run", "/dev/null"], ["/dev/null", "not a regular file"]),
    ("unknown nested key", ["run", "{d}/deep.yaml"], ["unknown key 'fl.extra'"]),
    ("unknown key in a list", ["run", "{d}/classes.yaml"], ["wireless.devices.classes[0].speed"]),
    ("section given a number", ["run", "{d}/flscalar.yaml", "-o", "fl.rounds=2"], ["'fl' is 3"]),
    # unknown keys, at several levels
    ("unknown top-level key", ["run", "-o", "wireles.cell.radius_m=5"], ["'wireles'", "'wireless'"]),
    ("unknown key", ["run", "-o", "fl.rnds=5"], ["unknown key 'fl.rnds'", "'fl.rounds'"]),
    ("unknown deep key", ["run", "-o", "wireless.cell.pathloss.modle=x"], ["wireless.cell.pathloss.model"]),
    ("key below a value", ["run", "-o", "fl.rounds.x=3"], ["'fl.rounds' is a value"]),
    ("key into a list", ["run", "-o", "wireless.cell.positions_m.0=1"], ["'wireless.cell.positions_m' is a"]),
    ("empty key part", ["run", "-o", "fl..rounds=3"], ["fl..rounds", "empty part"]),
    ("no equals", ["run", "-o", "fl.rounds"], ["fl.rounds", "key=value"]),
    # types and ranges
    ("string for int", ["run", "-o", "fl.rounds=many"], ["fl.rounds", "integer", "'many'"]),
    ("fraction for int", ["run", "-o", "fl.num_ues=2.5"], ["fl.num_ues", "fractional"]),
    ("bool for int", ["run", "-o", "fl.batch_size=true"], ["fl.batch_size", "not a boolean"]),
    (
        "bool in a list",
        ["run", "-o", "wireless.access.shares=[1, false]"],
        ["wireless.access.shares", "boolean"],
    ),
    ("empty value", ["run", "-o", "fl.rounds="], ["fl.rounds", "(got null)"]),
    ("below range", ["run", "-o", "fl.num_ues=0"], ["fl.num_ues", "greater than or equal to 1"]),
    ("above range", ["run", "-o", "fl.fraction=1.5"], ["fl.fraction", "less than or equal to 1"]),
    ("bad literal", ["run", "-o", "data.partition=random"], ["data.partition", "'iid'"]),
    ("negative seed", ["run", "-o", "seed=-1"], ["seed", "greater than or equal to 0"]),
    ("section as scalar", ["run", "-o", "wireless=5"], ["wireless: is a section", "cell, access"]),
    (
        "tuple too long",
        ["run", "-o", "wireless.cell.positions_m=[[100, 0, 1]]"],
        ["positions_m[0]", "2 items"],
    ),
    # non-finite numbers
    (
        "nan",
        ["run", "-o", "wireless.cell.noise_psd_dbm_hz=.nan"],
        ["wireless.cell.noise_psd_dbm_hz", "finite"],
    ),
    ("inf", ["run", "-o", "wireless.access.bandwidth_hz=.inf"], ["wireless.access.bandwidth_hz", "finite"]),
    ("overflow", ["run", "-o", "server.lr=1e999"], ["server.lr", "finite"]),
    (
        "nan in a pair",
        ["run", "-o", "wireless.cell.positions_m=[[100, .nan]]"],
        ["positions_m[0][1]", "finite"],
    ),
    # models, devices, codecs
    ("unknown model", ["run", "-o", "model.name=resnett"], ["model.name", "Did you mean 'resnet'"]),
    ("unknown device", ["run", "-o", "engine.device=banana"], ["engine.device", "cpu, cuda"]),
    ("meta device", ["run", "-o", "engine.device=meta"], ["engine.device", "cannot train"]),
    ("unknown codec", ["run", "-o", "codec=unifrom:8"], ["codec.uplink", "uniform:b"]),
    ("codec parameter", ["run", "-o", "codec=uniform:0"], ["codec.uplink", "1..8"]),
    ("downlink codec", ["run", "-o", "codec.downlink=topk:2"], ["codec.downlink", "(0, 1]"]),
    ("codec missing parameter", ["run", "-o", "codec=ef(topk)"], ["codec.uplink", "topk"]),
    # policies and per-UE lists
    ("first_k without k", ["run", "-o", "wireless.policy.name=first_k"], ["wireless.policy", "policy.k"]),
    (
        "first_k k too big",
        ["run", "-o", "wireless.policy.name=first_k", "-o", "wireless.policy.k=21"],
        ["wireless.policy.k=21"],
    ),
    (
        "async concurrency",
        ["run", "-o", "wireless.policy.name=async", "-o", "wireless.policy.concurrency=99"],
        ["wireless.policy.concurrency=99"],
    ),
    ("unknown policy", ["run", "-o", "wireless.policy.name=lazy"], ["wireless.policy.name", "sync"]),
    (
        "positions length",
        ["run", "-o", "wireless.cell.positions_m=[[100, 0]]"],
        ["wireless.cell.positions_m", "fl.num_ues=20"],
    ),
    (
        "power list length",
        ["run", "-o", "wireless.cell.ue_power_dbm=[20]"],
        ["wireless.cell.ue_power_dbm", "fl.num_ues=20"],
    ),
    (
        "shares with tdma",
        ["run", "-o", "wireless.access.shares=[1]", "-o", "wireless.access.scheme=tdma"],
        ["access.shares"],
    ),
    ("d_min beyond radius", ["run", "-o", "wireless.cell.d_min_m=600"], ["cell.d_min_m", "cell.radius_m"]),
    # data that cannot be had
    ("dataset without files", ["run", "-o", "data.dataset=cifar10"], ["cifar10", "data.root"]),
    ("too many UEs", ["run", "-o", "fl.num_ues=2000"], ["fl.num_ues=2000", "1438"]),
    (
        "shards",
        ["run", "-o", "data.partition=shards", "-o", "data.shards_per_user=999"],
        ["data.shards_per_user"],
    ),
    # studies
    ("vary seed", ["compare", "--vary", "seed=1,2"], ["--vary seed", "--seeds"]),
    ("vary twice", ["compare", "--vary", "fl.lr=0.1", "--vary", "fl.lr=0.2"], ["'fl.lr' is given twice"]),
    ("vary two names", ["compare", "--vary", "codec=fp32", "--vary", "codec.uplink=sign"], ["codec.uplink"]),
    ("vary replaces -o", ["compare", "-o", "fl.lr=0.2", "--vary", "fl.lr=0.1,0.3"], ["-o fl.lr=0.2"]),
    ("vary same config", ["compare", "--vary", "fl.rounds=2,2.0"], ["'fl.rounds=2' and 'fl.rounds=2.0'"]),
    ("vary output", ["compare", "--vary", "output.dir=a,b"], ["--vary output.dir"]),
    ("vary without values", ["compare", "--vary", "fl.lr="], ["fl.lr", "at least one value"]),
    ("vary unknown key", ["compare", "--vary", "fl.rnds=1,2"], ["'fl.rounds'"]),
    ("vary bad 2nd model", ["compare", "--vary", "model.name=mlp,banana"], ["model.name", "'banana'"]),
    (
        "vary bad 2nd k",
        ["compare", "-o", "wireless.policy.name=first_k", "--vary", "wireless.policy.k=2,30"],
        ["k=30"],
    ),
    (
        "vary 2nd dataset",
        ["compare", "--vary", "data.dataset=digits,cifar10"],
        ["data.dataset=cifar10", "data.root"],
    ),
    (
        "study path is a file",
        ["compare", "-o", "fl.rounds=1", "--study", "/dev/null"],
        ["--study '/dev/null'"],
    ),
    (
        "run dir is a file",
        ["run", "-o", "fl.rounds=1", "-o", "data.max_train=60", "--out", "/dev/null"],
        ["/dev/null"],
    ),
    ("demo -o replaced", ["demo", "-o", "codec=sign"], ["-o codec=sign", "--vary codec"]),
]


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch directory with the corpus files; training anything fails the test."""
    for name, content in FILES.items():
        (tmp_path / name).write_bytes(content)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("bad input reached training")

    monkeypatch.setattr("fedwave.fl.run.Simulation.run_rounds", refuse)
    monkeypatch.setattr("fedwave.fl.study.build_simulation", refuse)
    monkeypatch.chdir(tmp_path)  # default study/run directories land here
    return tmp_path


def test_corpus_is_large() -> None:
    assert len(CORPUS) >= 30 and len({c[0] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("argv", "needles"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_bad_input_exits_2_with_a_message_naming_it(
    scratch: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    args = [a.replace("{d}", str(scratch)) for a in argv]
    if args[0] in ("compare", "demo") and "--study" not in args:
        args += ["--study", str(scratch / "study")]
    if args[0] == "run" and "--out" not in args:
        args += ["-q", "--out", str(scratch / "run")]
    before = set(scratch.iterdir())
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("fedwave: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in captured.err, f"{needle!r} not in {captured.err!r}"
    assert set(scratch.iterdir()) == before  # no run or study directory left behind


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--seeds", "0"],
        ["compare", "--target", "nan"],
        ["compare", "--target", "1.5"],
        ["demo", "--target", "-1"],
        ["report", "x", "--target", "inf"],
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[-2]}:" in err and "Traceback" not in err


# ------------------------------------------------------------------- every field of every section


def _members(ann: Any) -> tuple[Any, ...]:
    return get_args(ann) if get_origin(ann) in (Union, types.UnionType) else (ann,)


def _leaves(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, field in model.model_fields.items():
        sections = [m for m in _members(field.annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
        if sections:
            yield from _leaves(sections[0], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field.annotation


def _sections(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    yield prefix.rstrip(".")
    for name, field in model.model_fields.items():
        for m in _members(field.annotation):
            if isinstance(m, type) and issubclass(m, BaseModel):
                yield from _sections(m, f"{prefix}{name}.")


NUMERIC = [k for k, ann in _leaves(Config) if {int, float} & set(_members(ann))]


def test_schema_walk_sees_the_numbers() -> None:
    assert len(NUMERIC) >= 40 and "wireless.access.bandwidth_hz" in NUMERIC and "fl.num_ues" in NUMERIC


@pytest.mark.parametrize("key", NUMERIC)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_every_number_refuses_nan_and_infinity(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{key}={value}"])
    assert f"{key}: must be a finite number; NaN and infinity are not allowed" in str(err.value)


@pytest.mark.parametrize("key", NUMERIC)
def test_every_number_refuses_booleans(key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{key}=true"])
    assert f"{key}: must be a number, not a boolean" in str(err.value)


@pytest.mark.parametrize("section", list(_sections(Config)))
def test_unknown_keys_are_refused_in_every_section(section: str) -> None:
    key = f"{section}.no_such_key" if section else "no_such_key"
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{key}=1"])
    assert f"unknown key '{key}'" in str(err.value) and "Valid keys" in str(err.value)


class _Clip(Section):
    clip: FloatOrInf = 1.0
    scale: float = 1.0


def test_float_or_inf_is_the_documented_opt_out() -> None:
    assert _Clip(clip=float("inf")).clip == float("inf")
    assert _Clip.model_validate({"clip": "-inf"}).clip == float("-inf")
    for bad in ({"clip": float("nan")}, {"scale": float("inf")}, {"clip": True}):
        with pytest.raises(ValueError, match=r"NaN|finite|boolean"):
            _Clip.model_validate(bad)
