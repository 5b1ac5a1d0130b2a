"""Codecs by spec string: ``get_codec("uniform:4")``, ``get_codec("ef(topk:0.01)")``.

A spec is a family name and its ``:``-separated arguments, or ``ef(<spec>)`` for error feedback around
another codec. Names are case-insensitive and surrounding spaces are ignored; ``codec.spec`` is the
canonical form.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from fedwave.codecs.base import Codec, FramedCodec
from fedwave.codecs.cast import BF16, FP16, FP32
from fedwave.codecs.drive import DRIVE
from fedwave.codecs.eden import EDEN
from fedwave.codecs.ef import ErrorFeedback
from fedwave.codecs.powersgd import PowerSGD
from fedwave.codecs.qsgd import QSGD
from fedwave.codecs.randk import RandK
from fedwave.codecs.sign import Sign
from fedwave.codecs.terngrad import TernGrad
from fedwave.codecs.topk import TopK
from fedwave.codecs.uniform import Uniform
from fedwave.errors import ConfigError

_FAMILIES: dict[str, type[FramedCodec]] = {
    cls.family: cls
    for cls in (FP32, FP16, BF16, Uniform, QSGD, TernGrad, Sign, TopK, RandK, EDEN, DRIVE, PowerSGD)
}
_USAGE = {
    "uniform": "uniform:b[:block]",
    "qsgd": "qsgd:s[:elias]",
    "topk": "topk:r",
    "randk": "randk:r",
    "eden": "eden:b",
    "powersgd": "powersgd:r",
}
_EF_USAGE = "ef(<codec>)"
_EF_INFO = (
    "<codec> = any spec but ef(...)",
    "error feedback: residual kept per UE and added before encoding (what it sends: see below)",
)


@dataclass(frozen=True)
class CodecInfo:
    """One codec family, as listed by ``fedwave codecs``.

    ``under_ef`` says what ``ef(<codec>)`` encodes with (see :meth:`fedwave.codecs.base.Codec.contraction`).
    """

    name: str
    params: str
    description: str
    unbiased: bool
    under_ef: str


def _valid() -> str:
    return ", ".join([_USAGE.get(name, name) for name in _FAMILIES] + [_EF_USAGE])


def get_codec(spec: str) -> Codec:
    """The codec for a spec string such as ``"fp16"``, ``"qsgd:16:elias"`` or ``"ef(topk:0.01)"``.

    Raises:
        ConfigError: unknown name (the message suggests the nearest one and lists all) or bad
            arguments (the message says what is valid).
    """
    if not isinstance(spec, str):
        raise ConfigError(f"a codec spec must be a string, got {type(spec).__name__}")
    text = spec.strip().lower()
    if text.startswith("ef(") or text == "ef":
        if not (text.startswith("ef(") and text.endswith(")")):
            raise ConfigError(f"error feedback is written ef(<codec>), e.g. ef(topk:0.01); got {spec!r}")
        return ErrorFeedback(get_codec(spec.strip()[3:-1]))
    name, *args = text.split(":")
    cls = _FAMILIES.get(name)
    if cls is None:
        from fedwave.plugins import find_codec  # a plug-in: registered, import path or entry point

        plugin: Codec | None = find_codec(spec)
        if plugin is not None:
            return plugin
        near = difflib.get_close_matches(name, [*_FAMILIES, "ef"], n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"unknown codec {spec!r}.{hint} Valid codecs: {_valid()}")
    return cls.from_args([a.strip() for a in args])


def available_codecs() -> list[CodecInfo]:
    """Every codec family with its parameters, a description, whether it is unbiased, and what ef sends."""
    infos = [
        CodecInfo(_USAGE.get(name, name), cls.params_help, cls.description, cls.unbiased, cls.under_ef)
        for name, cls in _FAMILIES.items()
    ]
    infos.append(CodecInfo(_EF_USAGE, *_EF_INFO, unbiased=False, under_ef=ErrorFeedback.under_ef))
    return infos


def format_codec_list() -> str:
    """The text ``fedwave codecs`` prints: one line per codec family with its parameters, then what
    ``ef(<codec>)`` sends for each (error feedback needs a contraction; see ``fedwave.codecs.ef``)."""
    infos = available_codecs()
    wn = max(len(i.name) for i in infos)
    wp = max(len(i.params) for i in infos)
    lines = [f"{'codec':<{wn}}  {'parameters':<{wp}}  {'unbiased':<8}  description"]
    for i in infos:
        flag = "yes" if i.unbiased else "no"
        lines.append(f"{i.name:<{wn}}  {i.params:<{wp}}  {flag:<8}  {i.description}")
    lines += [
        "",
        "under ef(<codec>): error feedback encodes with a contraction E||C(x)-x||^2 <= (1-delta)||x||^2",
    ]
    lines += [f"{i.name:<{wn}}  {i.under_ef}" for i in infos]
    return "\n".join(lines)
