"""Study and run specs as stored: canonical JSON text, and the differences between two specs."""

from __future__ import annotations

import json
import math
from typing import Any

from fedwave.errors import ConfigError


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys (the form stored and compared); raises ConfigError if unable."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot store value as JSON: {exc}") from exc


def spec_differences(stored: Any, given: Any, path: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values, one line per differing key path.

    Values compare with ``==`` (so 1 matches 1.0), NaN matches NaN.
    """
    where = path or "<spec>"
    if isinstance(stored, dict) and isinstance(given, dict):
        out = []
        for key in sorted(set(stored) | set(given), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in given:
                out.append(f"{sub}: stored {stored[key]!r}, missing in the given spec")
            elif key not in stored:
                out.append(f"{sub}: not in the stored spec, given {given[key]!r}")
            else:
                out.extend(spec_differences(stored[key], given[key], sub))
        return out
    both_nan = (
        isinstance(stored, float) and isinstance(given, float) and math.isnan(stored) and math.isnan(given)
    )
    if stored != given and not both_nan:
        return [f"{where}: stored {stored!r}, given {given!r}"]
    return []
