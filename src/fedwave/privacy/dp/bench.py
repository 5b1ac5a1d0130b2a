"""Accountant benchmark (``fedwave bench privacy``): host seconds of ``fedwave privacy`` per accountant.

Times what ``fedwave privacy`` computes for the default scenario at client level (Poisson q = 0.25,
z = 1) over a given number of rounds: the compact epsilon table, the same with ``dp.target_epsilon``
calibration, and, for the first accountant, sample level. Reads the host clock only to time the work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from fedwave.config import load_config
from fedwave.privacy.dp.describe import describe_plan
from fedwave.privacy.dp.plan import plan_privacy


def _time_privacy(overrides: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    cfg = load_config(None, overrides)
    plan = plan_privacy(cfg)
    text = describe_plan(plan, cfg)
    return time.perf_counter() - t0, text.splitlines()[-1]


def run_benchmark(rounds: int, accountants: Sequence[str]) -> list[tuple[str, float, str]]:
    """(case, seconds, last line of the output) for each accountant and case."""
    base = [f"fl.rounds={rounds}", "fl.sampling=poisson", "fl.fraction=0.25", "dp.level=client"]
    rows: list[tuple[str, float, str]] = []
    for i, acc in enumerate(accountants):
        common = [*base, f"dp.accountant={acc}"]
        sec, line = _time_privacy([*common, "dp.noise_multiplier=1.0"])
        rows.append((f"{acc} client z=1, table", sec, line))
        sec, line = _time_privacy([*common, "dp.target_epsilon=8"])
        rows.append((f"{acc} client target eps 8, calibrate + table", sec, line))
        if i == 0:
            sample = [
                f"fl.rounds={rounds}",
                "dp.level=sample",
                f"dp.accountant={acc}",
                "dp.noise_multiplier=1.0",
            ]
            sec, line = _time_privacy(sample)
            rows.append((f"{acc} sample z=1, per-UE table", sec, line))
    return rows


def format_benchmark(rows: list[tuple[str, float, str]], rounds: int) -> str:
    """One line per case: seconds and the resulting final-epsilon line."""
    lines = [f"fedwave privacy over {rounds} rounds (host seconds, includes config validation)"]
    width = max(len(c) for c, _, _ in rows)
    lines.extend(f"  {case:<{width}}  {sec:7.2f} s   {line}" for case, sec, line in rows)
    return "\n".join(lines)
