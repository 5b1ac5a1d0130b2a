"""Reference pages generated from the code (the documentation site's config, command and codec pages).

Nothing here is written by hand: :func:`config_reference` walks the typed config (every key with its
type, default, range and comment), :func:`commands_reference` walks the CLI's argument parser, and
:func:`codecs_reference` lists the codec registry and measures each codec's size and error on a fixed
vector. The site's build hook (``docs/hooks/fedwave_reference.py``) puts them into the pages, so a key,
command or codec added to the code appears in the docs without anyone copying it.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from fedwave.config import Config


def _type_name(ann: Any) -> str:
    """An annotation in the words of a YAML user: ``int``, ``float | null``, ``'fixed' | 'poisson'``."""
    origin = get_origin(ann)
    if origin is Annotated:
        return _type_name(get_args(ann)[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(ann))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(ann))
    if origin in (list, tuple):
        args = [a for a in get_args(ann) if a is not Ellipsis]
        inner = " | ".join(dict.fromkeys(_type_name(a) for a in args)) or "any"
        return f"list of {inner}"
    if ann is type(None):
        return "null"
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def _section(ann: Any) -> type[BaseModel] | None:
    members = get_args(ann) if get_origin(ann) in (Union, types.UnionType) else (ann,)
    for m in members:
        if isinstance(m, type) and issubclass(m, BaseModel):
            return m
    return None


def _range(field: FieldInfo) -> str:
    """``> 0``, ``>= 1``, ``0 <= x < 1`` from the field's constraints (empty when unconstrained)."""
    parts: list[str] = []
    for m in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(m, attr, None)
            if value is not None and isinstance(m, annotated_types.BaseMetadata):
                parts.append(f"{sign} {value}")
        if isinstance(m, annotated_types.MinLen | annotated_types.MaxLen):
            parts.append(str(m).replace("annotated_types.", ""))
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is not None:
        return "(section)" if _section(field.annotation) else "(computed)"
    value = field.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[tuple[str, FieldInfo, bool]]:
    """Every key of the config, depth first: (dotted key, field, whether it is a section)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _section(field.annotation)
        yield key, field, sub is not None
        if sub is not None:
            yield from config_keys(sub, f"{key}.")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    """Markdown: one table per section, a row per key with its type, default, range and comment."""
    out: list[str] = []
    rows: list[str] = []

    def flush() -> None:
        if rows:
            out.extend(["| key | type | default | range | comment |", "|---|---|---|---|---|", *rows, ""])
            rows.clear()

    for key, field, is_section in config_keys():
        if is_section:
            flush()
            sub = _section(field.annotation)
            doc = (sub.__doc__ or "").strip().split("\n")[0] if sub is not None else ""
            depth = key.count(".") + 2
            out.extend([f"{'#' * min(depth, 6)} `{key}`", "", _cell(field.description or doc), ""])
            continue
        rows.append(
            f"| `{key}` | {_cell(_type_name(field.annotation))} | {_cell(_default(field))} | "
            f"{_cell(_range(field))} | {_cell(field.description or '')} |"
        )
    flush()
    return "\n".join(out)


def _walk_commands(
    parser: argparse.ArgumentParser, path: list[str]
) -> Iterator[tuple[list[str], argparse.ArgumentParser, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield [*path, name], sub, helps.get(name, "")
                yield from _walk_commands(sub, [*path, name])


def command_paths() -> list[str]:
    """Every command and subcommand of ``fedwave`` (``run``, ``bench codecs``, ``study verify``...)."""
    from fedwave.cli import build_parser

    return [" ".join(p) for p, _, _ in _walk_commands(build_parser(), [])]


def commands_reference() -> str:
    """Markdown: every command with its one-line help and its full ``--help`` text."""
    from fedwave.cli import build_parser

    parser = build_parser()
    out = ["The top level: `fedwave [--portable] COMMAND ...`.", ""]
    for path, sub, help_text in _walk_commands(parser, []):
        sub.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        out.extend([f"## `fedwave {' '.join(path)}`", "", _cell(help_text), "", "```text"])
        out.append(sub.format_help().rstrip())
        out.extend(["```", ""])
    return "\n".join(out)


#: Specs measured on the codec page (one or two per family, typical arguments).
MEASURED_SPECS = [
    "fp32",
    "fp16",
    "bf16",
    "uniform:8",
    "uniform:4",
    "uniform:2:256",
    "qsgd:16",
    "qsgd:4:elias",
    "terngrad",
    "sign",
    "topk:0.01",
    "randk:0.01",
    "eden:2",
    "drive",
    "powersgd:4",
    "ef(topk:0.01)",
]


def codec_rows(values: tuple[int, int] = (400, 250)) -> list[dict[str, Any]]:
    """Each of :data:`MEASURED_SPECS` encoded once on a seeded Gaussian matrix of shape ``values``:
    payload bytes, bits per coordinate, normalized squared error ``||C(x) - x||^2 / ||x||^2``."""
    import torch

    from fedwave.codecs import get_codec

    x = torch.randn(*values, generator=torch.Generator().manual_seed(0))
    rows = []
    for spec in MEASURED_SPECS:
        codec = get_codec(spec)
        payload = codec.encode([x], rng=torch.Generator().manual_seed(1), state={})
        y = codec.decode(payload)[0]
        nmse = float((y.double() - x.double()).pow(2).sum() / x.double().pow(2).sum())
        rows.append(
            {
                "spec": spec,
                "bytes": len(payload),
                "bits_per_value": 8 * len(payload) / x.numel(),
                "nmse": nmse,
                "unbiased": codec.unbiased,
                "exact": codec.exact,
            }
        )
    return rows


def codecs_reference() -> str:
    """Markdown: the registry's table of codec families and a measured size/error table."""
    from fedwave.codecs import available_codecs

    out = ["| codec | parameters | unbiased | description | under `ef(...)` |", "|---|---|---|---|---|"]
    for info in available_codecs():
        flag = "yes" if info.unbiased else "no"
        out.append(
            f"| `{_cell(info.name)}` | {_cell(info.params)} | {flag} | {_cell(info.description)} | "
            f"{_cell(info.under_ef)} |"
        )
    out.extend(
        [
            "",
            "## Sizes and errors, measured",
            "",
            "Each spec encoded once (seed 1) on a 400 x 250 matrix of standard normal values (seed 0) when "
            "this page was built: the payload's real length (header and checksum included), bits per "
            "coordinate, and the normalized squared error of that one draw (not an expectation).",
            "",
            "| spec | bytes | bits / value | NMSE | unbiased | exact |",
            "|---|---|---|---|---|---|",
        ]
    )
    for r in codec_rows():
        out.append(
            f"| `{r['spec']}` | {r['bytes']:,} | {r['bits_per_value']:.3f} | {r['nmse']:.3g} | "
            f"{'yes' if r['unbiased'] else 'no'} | {'yes' if r['exact'] else 'no'} |"
        )
    return "\n".join(out) + "\n"


#: Page marker -> generator (the build hook replaces each marker with the generated Markdown).
MARKERS = {
    "<!-- fedwave:config-reference -->": config_reference,
    "<!-- fedwave:commands-reference -->": commands_reference,
    "<!-- fedwave:codecs-reference -->": codecs_reference,
}
