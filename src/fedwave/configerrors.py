"""Validation errors in the user's words: the dotted key as written in YAML, what is wrong, what is allowed.

pydantic reports locations with internal parts (union members such as ``list[float]``, validator
names) and messages with class names; :func:`explain` turns them into lines such as
``wireless.cell.positions_m[0][1]: must be a finite number; NaN and infinity are not allowed (got .nan)``.
"""

from __future__ import annotations

import difflib
import re
import types
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from fedwave.errors import ConfigError

_SHOWN_CHARS = 80


def _members(ann: Any) -> tuple[Any, ...]:
    return get_args(ann) if get_origin(ann) in (Union, types.UnionType) else (ann,)


def _model_in(ann: Any) -> type[BaseModel] | None:
    for m in _members(ann):
        if isinstance(m, type) and issubclass(m, BaseModel):
            return m
    return None


def _element_of(ann: Any) -> Any:
    for m in _members(ann):
        if get_origin(m) in (list, tuple):
            args = [a for a in get_args(m) if a is not Ellipsis]
            return args[0] if args else Any
    return Any


def user_key(schema: type[BaseModel], loc: tuple[str | int, ...], *, keep_last: bool = False) -> str:
    """``loc`` as the user writes the key: ``wireless.cell.positions_m[0][1]``.

    Parts that are not keys (pydantic's union-member and validator tags) are left out; ``keep_last``
    keeps the last part even if it is not a known key (the unknown key of an ``extra_forbidden`` error).
    """
    ann: Any = schema
    out = ""
    for i, part in enumerate(loc):
        model = _model_in(ann)
        if isinstance(part, int):
            out += f"[{part}]"
            ann = _element_of(ann)
        elif model is not None and part in model.model_fields:
            out += ("." if out else "") + part
            ann = model.model_fields[part].annotation
        elif keep_last and i == len(loc) - 1:
            out += ("." if out else "") + str(part)
    return out


def section_keys(schema: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the section at ``loc`` (empty if ``loc`` is not a section)."""
    ann: Any = schema
    for part in loc:
        model = _model_in(ann)
        if isinstance(part, int):
            ann = _element_of(ann)
        elif model is not None and part in model.model_fields:
            ann = model.model_fields[part].annotation
    model = _model_in(ann)
    return list(model.model_fields) if model is not None else []


def shown(value: Any) -> str:
    """A value as it is written in YAML (``.nan``, ``true``, ``[1, 2]``, strings quoted), shortened."""
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 4] + "...'"
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        text = text.removesuffix("...").strip()
    except yaml.YAMLError:
        text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _message(err: ErrorDetails, schema: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
    if kind == "finite_number":
        return "must be a finite number; NaN and infinity are not allowed"
    if kind == "missing":
        return "is required (it has no default)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        keys = section_keys(schema, loc)
        if keys:
            return f"is a section: give a mapping of its keys ({', '.join(keys)})"
    return msg.replace("Input should be", "must be")


_KEY_END = re.compile(r"[.:\[= ]")


def qualify(schema: type[BaseModel], loc: tuple[str | int, ...], message: str) -> str | None:
    """``message`` with its leading key completed to the user's full key, or None if it has none.

    Section validators name keys relative to themselves: under ``wireless.cell``, the message
    ``"cell.positions_m[0] is ..."`` becomes ``"wireless.cell.positions_m[0] is ..."``, and
    ``"positions_m has ..."`` (a key of that section) becomes ``"wireless.cell.positions_m has ..."``.
    """
    key = user_key(schema, loc)
    parts = key.split(".") if key else []
    for i in range(len(parts)):
        suffix = ".".join(parts[i:])
        rest = message[len(suffix) :]
        # a word after a bare name ("device type ...") is prose; after a dotted key it is not
        ends = _KEY_END.match(rest) and (rest[0] != " " or "." in suffix)
        if message.startswith(suffix) and (not rest or ends):
            return ".".join(parts[:i]) + ("." if i else "") + message
    match = _KEY_END.search(message)
    head = message[: match.start()] if match else message
    if head and head in section_keys(schema, loc):  # a key of the section the message is about
        return f"{key}.{message}" if key else message
    return None


def _line(err: ErrorDetails, schema: type[BaseModel]) -> tuple[str, str, str]:
    """(key, message, shown input) of one error; an empty key: the message names the keys itself."""
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        key = user_key(schema, loc, keep_last=True)
        parent = loc[:-1]
        valid = section_keys(schema, parent)
        near = difflib.get_close_matches(str(loc[-1]).split(":")[0], valid, n=1, cutoff=0.5)
        where = user_key(schema, parent)
        hint = f" Did you mean '{where + '.' if where else ''}{near[0]}'?" if near else ""
        if ":" in str(loc[-1]):
            hint += " (YAML needs a space after the colon: 'key: value')"
        here = "here" if where else "at the top level"
        return "", f"unknown key '{key}'.{hint} Valid keys {here}: {', '.join(valid)}.", ""
    key = user_key(schema, loc)
    msg = _message(err, schema, loc)
    is_section = bool(section_keys(schema, loc)) and err["type"] not in ("model_type", "dict_type")
    show = "input" in err and not is_section and err["type"] != "missing"
    got = f" (got {shown(err['input'])})" if show else ""
    if isinstance(err.get("input"), str) and shown(err["input"]) in msg:  # the message quotes it already
        got = ""
    full = qualify(schema, loc, msg) if err["type"] == "value_error" else None
    if full is not None:
        return "", full + got, ""
    return key, msg, got


def explain(exc: ValidationError, schema: type[BaseModel], source: str) -> ConfigError:
    """A :class:`ConfigError` listing every problem of ``exc`` with the user's keys."""
    errors = [_line(err, schema) for err in exc.errors()]
    # A value that fits no alternative of a union yields one error per alternative: keep the errors
    # about its elements (``ue_power_dbm[1]: must be a finite number``) over "must be a valid number",
    # and join the others ("must be a valid number, or must be a valid list").
    deeper = {k.split("[")[0] for k, _, _ in errors if "[" in k}
    merged: dict[tuple[str, str], list[str]] = {}
    for key, msg, got in errors:
        if key and key in deeper and "[" not in key:
            continue
        msgs = merged.setdefault((key, got), [])
        if msg not in msgs:
            msgs.append(msg)
    lines = [
        f"{key}: {', or '.join(msgs)}{got}" if key else "\n  ".join(msgs)
        for (key, got), msgs in merged.items()
    ]
    return ConfigError(f"invalid configuration ({source}):\n  " + "\n  ".join(lines))
