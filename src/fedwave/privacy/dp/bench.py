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

Row = tuple[str, float, float, str]  # case, wall seconds, CPU seconds, last output line


def _time_privacy(case: str, overrides: list[str]) -> Row:
    wall, cpu = time.perf_counter(), time.process_time()
    cfg = load_config(None, overrides)
    plan = plan_privacy(cfg)
    text = describe_plan(plan, cfg)
    return case, time.perf_counter() - wall, time.process_time() - cpu, text.splitlines()[-1]


def run_benchmark(rounds: int, accountants: Sequence[str]) -> list[Row]:
    """(case, wall s, CPU s, last line of the output) for each accountant and case."""
    base = [f"fl.rounds={rounds}", "fl.sampling=poisson", "fl.fraction=0.25", "dp.level=client"]
    rows: list[Row] = []
    for i, acc in enumerate(accountants):
        common = [*base, f"dp.accountant={acc}"]
        rows.append(_time_privacy(f"{acc} client z=1, table", [*common, "dp.noise_multiplier=1.0"]))
        rows.append(
            _time_privacy(f"{acc} client target eps 8, calibrate + table", [*common, "dp.target_epsilon=8"])
        )
        if i == 0:
            sample = [
                f"fl.rounds={rounds}",
                "dp.level=sample",
                f"dp.accountant={acc}",
                "dp.noise_multiplier=1.0",
            ]
            rows.append(_time_privacy(f"{acc} sample z=1, per-UE table", sample))
    return rows


def format_benchmark(rows: list[Row], rounds: int) -> str:
    """One line per case: wall and CPU seconds, and the resulting final-epsilon line."""
    lines = [f"fedwave privacy over {rounds} rounds (host seconds in-process, after imports; wall / CPU)"]
    width = max(len(r[0]) for r in rows)
    lines.extend(
        f"  {case:<{width}}  {wall:7.2f} s / {cpu:6.2f} s   {line}" for case, wall, cpu, line in rows
    )
    return "\n".join(lines)
