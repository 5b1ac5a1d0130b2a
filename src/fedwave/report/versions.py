"""The software versions a study records and a report shows (read without importing the packages)."""

from __future__ import annotations

import platform
import sqlite3
from importlib import metadata

#: Distributions whose versions are recorded, in display order.
PACKAGES = ("fedwave", "torch", "numpy", "pandas", "matplotlib")


def software_versions() -> dict[str, str]:
    """Versions of python, the platform, SQLite and :data:`PACKAGES` ("not installed" if absent)."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["sqlite"] = sqlite3.sqlite_version
    return versions
