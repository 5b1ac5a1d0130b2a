"""The base of every typed configuration section: unknown keys are errors, values are validated.

Rules every section inherits (so a new section gets them without writing a line):

* unknown keys are errors (the loader names the key and suggests the nearest valid one);
* numbers are finite: NaN and +-infinity are refused for every ``float`` (and ``int``) field, alone or
  inside lists and tuples. A field where infinity means something (a clip norm of ``inf`` = no clipping)
  opts out by using the type :data:`FloatOrInf` (infinity allowed, NaN still refused);
* booleans are not numbers: ``true``/``false`` given for an ``int`` or ``float`` field (or inside a list of
  numbers) is refused instead of being read as 1/0;
* a number written as a string (``"5"``, ``"1e-3"``) is read as that number: PyYAML follows YAML 1.1,
  where ``1e-3`` (no dot) is a string, and refusing it would refuse an ordinary way to write 0.001;
* a number given for a string field is read as text (``output.name: 2024`` is the name ``"2024"``);
* lists are accepted where a tuple is declared (YAML has no tuples).
"""

from __future__ import annotations

import math
import types
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator


def _not_nan(v: float) -> float:
    if math.isnan(v):
        raise ValueError("must be a number, not NaN")
    return v


#: A float that may be ``inf``/``-inf`` (for fields where infinity means "unbounded"); never NaN.
FloatOrInf = Annotated[float, Field(allow_inf_nan=True), AfterValidator(_not_nan)]


def _members(ann: Any) -> tuple[Any, ...]:
    """The alternatives of a union annotation (``Annotated`` unwrapped); ``(ann,)`` otherwise."""
    origin = get_origin(ann)
    if origin is Annotated:
        return _members(get_args(ann)[0])
    if origin is Union or origin is types.UnionType:
        return tuple(m for a in get_args(ann) for m in _members(a))
    return (ann,)


def _bool_allowed(ann: Any) -> bool:
    """Whether a bare ``True``/``False`` is a legitimate value of ``ann``."""
    for m in _members(ann):
        if m is bool or m is Any or m is object:
            return True
        if get_origin(m) is Literal and any(isinstance(a, bool) for a in get_args(m)):
            return True
    return False


def _element_types(ann: Any) -> tuple[Any, ...]:
    """The element annotations of the list/tuple alternatives of ``ann``."""
    out: list[Any] = []
    for m in _members(ann):
        if get_origin(m) in (list, tuple, set, frozenset):
            out.extend(a for a in get_args(m) if a is not Ellipsis)
    return tuple(out)


def stray_bool(value: Any, ann: Any) -> bool:
    """Whether ``value`` holds a boolean where ``ann`` expects a number (or another non-bool type)."""
    if isinstance(value, bool):
        return not _bool_allowed(ann)
    if isinstance(value, list | tuple):
        elements = _element_types(ann)
        if elements and not any(_bool_allowed(e) for e in elements):
            return any(isinstance(v, bool) for v in value) or any(
                stray_bool(v, e) for v in value if isinstance(v, list | tuple) for e in elements
            )
    return False


@cache
def _annotation(cls: type[BaseModel], name: str) -> Any:
    field = cls.model_fields.get(name)
    return field.annotation if field is not None else Any


class Section(BaseModel):
    """A strict configuration section: unknown keys are rejected, assignments are validated.

    Subclasses declare fields with types, defaults, ranges (``Field(ge=..., le=...)``) and a
    ``description`` (shown by ``fedwave run --print-config``). See the module docstring for the rules
    every section inherits (finite numbers, no booleans for numbers).
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        frozen=False,
        allow_inf_nan=False,
        coerce_numbers_to_str=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if info.field_name is not None and stray_bool(v, _annotation(cls, info.field_name)):
            raise ValueError(
                "must be a number, not a boolean (true/false)"
                if isinstance(v, bool)
                else "must hold numbers, not booleans (true/false)"
            )
        return v
