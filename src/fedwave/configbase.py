"""The base of every typed configuration section: unknown keys are errors, values are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A strict configuration section: unknown keys are rejected, assignments are validated.

    Subclasses declare fields with types, defaults, ranges (``Field(ge=..., le=...)``) and a
    ``description`` (shown by ``fedwave run --print-config``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
