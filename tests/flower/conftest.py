"""Flower tests: no telemetry, no Ray usage statistics; skipped when the flower extra is not installed."""

import os

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
