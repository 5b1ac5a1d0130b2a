"""Shared paths and helpers of the public-API tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
EXAMPLES = ROOT / "examples"

#: A small, fast scenario: 4 UEs, 2 rounds, the one-hidden-layer MLP on the built-in digits.
SMALL = {"fl": {"rounds": 2, "num_ues": 4}, "model": {"name": "mlp"}}


def subprocess_env(*paths: Path) -> dict[str, str]:
    """The environment of a child process importing this checkout's fedwave (and ``paths``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (SRC, *paths))
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture
def examples_on_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """``examples/`` importable in this process (``int8_codec``, ``custom_model``)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return EXAMPLES


@pytest.fixture
def python() -> str:
    return sys.executable
