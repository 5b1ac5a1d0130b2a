"""Codecs by spec string: canonical names, helpful errors, the `fedwave codecs` listing."""

from __future__ import annotations

import pytest

from fedwave.codecs import CodecInfo, available_codecs, format_codec_list, get_codec
from fedwave.errors import ConfigError


def test_canonical_spec_round_trips(spec: str) -> None:
    codec = get_codec(spec)
    assert get_codec(codec.spec).spec == codec.spec


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (" FP16 ", "fp16"),
        ("Uniform:4", "uniform:4"),
        ("uniform:4:256", "uniform:4:256"),
        ("topk:1e-2", "topk:0.01"),
        ("topk: 0.5", "topk:0.5"),
        ("QSGD:16:Elias", "qsgd:16:elias"),
        ("EF( randk:0.1 )", "ef(randk:0.1)"),
        ("EF(powersgd:4)", "ef(powersgd:4)"),
    ],
)
def test_spec_normalization(text: str, canonical: str) -> None:
    assert get_codec(text).spec == canonical


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("qsdg:4", "Did you mean 'qsgd'"),
        ("topkk:0.1", "Did you mean 'topk'"),
        ("zip", "Valid codecs: fp32"),
        ("uniform", "uniform"),
        ("uniform:0", "1..8"),
        ("uniform:9", "1..8"),
        ("uniform:4:0", "block size"),
        ("uniform:x", "integer"),
        ("qsgd:0", "levels"),
        ("qsgd:4:gamma", "elias"),
        ("topk:0", "(0, 1]"),
        ("topk:1.5", "(0, 1]"),
        ("topk:nan", "(0, 1]"),
        ("randk", "fraction"),
        ("eden:9", "1..8"),
        ("drive:1", "no arguments"),
        ("fp32:1", "no arguments"),
        ("powersgd:0", "rank"),
        ("ef(nope)", "unknown codec"),
        ("ef(ef(randk:0.1))", "error feedback cannot be nested"),
        ("ef(EF(topk:0.01))", "wrap the codec once, e.g. ef(topk:0.01)"),
        ("ef(topk:0.1", "ef(<codec>)"),
        ("ef", "ef(<codec>)"),
        ("", "unknown codec"),
    ],
)
def test_bad_specs_raise_config_error(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_codec(text)
    assert fragment in str(info.value)


def test_unknown_name_lists_every_codec() -> None:
    with pytest.raises(ConfigError) as info:
        get_codec("nothing-like-it")
    for info_row in available_codecs():
        assert info_row.name in str(info.value)


def test_available_codecs_and_listing() -> None:
    infos = available_codecs()
    assert all(isinstance(i, CodecInfo) for i in infos)
    names = [i.name.split(":")[0].split("(")[0] for i in infos]
    assert names == [
        "fp32", "fp16", "bf16", "uniform", "qsgd", "terngrad", "sign", "topk", "randk", "eden", "drive",
        "powersgd", "ef",
    ]  # fmt: skip
    text = format_codec_list()
    lines = text.splitlines()
    assert len(lines) == 2 * len(infos) + 3  # header, one line per family, blank, title, one per family
    for info, line in zip(infos, lines[1:]):
        assert line.startswith(info.name)
        assert info.params in line
        assert (" yes " in line) == info.unbiased
    assert lines[len(infos) + 1] == ""
    assert "contraction" in lines[len(infos) + 2]
    for info, line in zip(infos, lines[len(infos) + 3 :]):
        assert line.split() == [info.name, *info.under_ef.split()]
    assert {i.name: i.unbiased for i in infos}["qsgd:s[:elias]"]
    assert not {i.name: i.unbiased for i in infos}["topk:r"]
    under_ef = {i.name: i.under_ef for i in infos}
    assert under_ef["topk:r"].startswith("as is")
    assert under_ef["randk:r"].startswith("kept values sent unscaled")
    assert under_ef["qsgd:s[:elias]"].startswith("scaled by 1/(1+omega")
    assert under_ef["drive"].startswith("MSE-optimal scale")
    assert under_ef["ef(<codec>)"].startswith("refused")


def test_flags(spec: str) -> None:
    codec = get_codec(spec)
    assert codec.exact == (spec == "fp32")
    assert codec.stateful == ("powersgd" in spec or spec.startswith("ef("))
