"""Configuration as plain data: reading a YAML file, ``key=value`` overrides, commented YAML out.

One loader (:func:`read_config_file`) serves every command, so a config file that is missing, a
directory, a device, unreadable, not UTF-8, not YAML, has a key twice or is not a mapping fails the same
way everywhere: a :class:`~fedwave.errors.ConfigError` naming the file and what is wrong.
"""

from __future__ import annotations

import copy
import stat
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from fedwave.errors import ConfigError

#: Sections that accept a bare string for one key: ``codec: uniform:8`` means ``codec.uplink: uniform:8``.
SHORTHANDS: dict[str, str] = {"codec": "uplink"}


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML itself keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the safe constructor explains it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


def parse_yaml(text: str, what: str) -> Any:
    """``text`` parsed as one YAML document; errors name ``what`` and the line and column."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = ", ".join(p for p in (exc.context, exc.problem) if p) or "syntax error"
        raise ConfigError(f"{what} is not valid YAML: {problem}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {exc}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (an empty file is an empty mapping: all defaults).

    Raises:
        ConfigError: the path does not exist, is not a regular file, cannot be read, is not UTF-8
            text, is not valid YAML (or repeats a key), or its top level is not a mapping.
    """
    p = Path(path)
    what = f"config file '{p}'"
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{what} is a directory; give the path of a YAML file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} is not a regular file (a device, pipe or socket); give a YAML file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} is not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x}); save it as UTF-8 YAML"
        ) from None
    loaded = parse_yaml(text, what)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{what}: the top level must be a mapping of sections (e.g. 'fl: {{rounds: 5}}'), "
            f"got {_kind(loaded)}"
        )
    return loaded


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"fl.rounds=5"`` -> (["fl", "rounds"], 5); the value is parsed as a YAML scalar or list."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. fl.rounds=5")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not key.strip():
        raise ConfigError(f"override '{text}' has an empty key; write key=value, e.g. fl.rounds=5")
    if any(not p.strip() for p in parts):
        raise ConfigError(f"override '{text}': the key '{key.strip()}' has an empty part (e.g. 'fl..rounds')")
    parts = [p.strip() for p in parts]
    try:
        value = parse_yaml(raw, "") if raw.strip() else None
    except ConfigError:
        value = raw
    if isinstance(value, str | int | float | bool | list | dict) or value is None:
        return parts, value
    return parts, raw


def _section_of(ann: Any) -> type[BaseModel] | None:
    """The model class among the alternatives of ``ann`` (``X``, ``X | None``), if any."""
    members = get_args(ann) if get_origin(ann) in (Union, types.UnionType) else (ann,)
    for m in members:
        if isinstance(m, type) and issubclass(m, BaseModel):
            return m
    return None


def _check_path(schema: type[BaseModel] | None, parts: list[str], text: str) -> None:
    """Refuse an override that goes below a value (``fl.rounds.x``) or into a list."""
    cls = schema
    for i, part in enumerate(parts[:-1]):
        if cls is None or part not in cls.model_fields:
            return  # an unknown key: validation names it and suggests the nearest one
        ann = cls.model_fields[part].annotation
        sub = _section_of(ann)
        if sub is None:
            here = ".".join(parts[: i + 1])
            kind = "a list" if get_origin(ann) is list or list in get_args(ann) else "a value"
            raise ConfigError(
                f"override '{text}': '{here}' is {kind}, not a section; set it whole, e.g. -o {here}=..."
            )
        cls = sub


def apply_overrides(
    data: dict[str, Any], overrides: list[str], schema: type[BaseModel] | None = None
) -> dict[str, Any]:
    """Set each dotted ``key=value`` in a copy of the nested dict ``data``; validation happens afterwards.

    With ``schema`` (the config model) a key that descends below a value or into a list is refused here.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"the configuration must be a mapping of sections, got {_kind(data)}")
    out: dict[str, Any] = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        _check_path(schema, parts, text)
        node = out
        for i, p in enumerate(parts[:-1]):
            child = node.get(p)
            if isinstance(child, str) and i == 0 and p in SHORTHANDS:
                child = {SHORTHANDS[p]: child}
            elif child is None:
                child = {}
            elif not isinstance(child, dict):
                here = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"override '{text}': '{here}' is {child!r} in the configuration, not a section"
                )
            node[p] = child
            node = child
        last = parts[-1]
        if (
            len(parts) == 1
            and last in SHORTHANDS
            and isinstance(value, str)
            and isinstance(node.get(last), dict)
        ):
            node[last][SHORTHANDS[last]] = value  # codec=X sets codec.uplink and keeps codec.downlink
        else:
            node[last] = value
    return out


def _scalar(v: Any) -> str:
    text = yaml.safe_dump(v, default_flow_style=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def commented_yaml(model: BaseModel, indent: int = 0) -> str:
    """``model`` as YAML with each field's description as a comment (for ``--print-config``)."""
    lines: list[str] = []
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        desc = field.description or ""
        if isinstance(value, BaseModel):
            doc = (type(value).__doc__ or "").strip().splitlines()[0] if type(value).__doc__ else ""
            lines.append(f"{pad}{name}:" + (f"  # {desc or doc}" if (desc or doc) else ""))
            lines.append(commented_yaml(value, indent + 1))
        else:
            dumped = _scalar(
                value.model_dump(mode="json")
                if isinstance(value, BaseModel)
                else (list(value) if isinstance(value, tuple) else value)
            )
            lines.append(f"{pad}{name}: {dumped}" + (f"  # {desc}" if desc else ""))
    return "\n".join(line for line in lines if line)
