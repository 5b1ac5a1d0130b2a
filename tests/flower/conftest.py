"""Flower tests: no telemetry, no Ray usage statistics; skipped when the flower extra is not installed."""

import os

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _keep_the_signal_handlers() -> Iterator[None]:
    """Flower's simulation installs its own SIGINT/SIGTERM handlers in the process that runs it; put the
    previous ones back so later tests in this worker see Ctrl-C as before."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)
