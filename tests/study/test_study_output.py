"""What `fedwave compare` prints besides the table."""

from __future__ import annotations

import pandas as pd

from fedwave.cli_study import _air_vs_compute


def test_air_vs_compute_ratio_per_method() -> None:
    events = pd.DataFrame(
        {
            "method": ["a", "a", "b"],
            "status": ["arrived", "skipped", "arrived"],
            "attempts": [1, 0, 2],
            "t_compute_start": [0.0, 0.0, 0.0],
            "t_compute_end": [1.0, 5.0, 2.0],
            "t_upload_start": [1.0, 5.0, 2.0],
            "t_upload_end": [3.0, 5.0, 2.1],
        }
    )
    text = _air_vs_compute(events)
    line_a = next(line for line in text.splitlines() if line.strip().startswith("a "))
    line_b = next(line for line in text.splitlines() if line.strip().startswith("b "))
    assert "2.000 s /  1.000 s =   2.00  (within 10x: yes)" in line_a  # the skipped UE is left out
    assert "=   0.05  (within 10x: no)" in line_b


def test_air_vs_compute_lines_stay_aligned_for_long_method_names() -> None:
    long = "wireless.access.scheme=aircomp, fl.selection=best_channel"
    events = pd.DataFrame(
        {
            "method": ["short", long],
            "status": ["arrived", "arrived"],
            "attempts": [1, 1],
            "t_compute_start": [0.0, 0.0],
            "t_compute_end": [1.0, 1.0],
            "t_upload_start": [1.0, 1.0],
            "t_upload_end": [1.5, 3.0],
        }
    )
    rows = _air_vs_compute(events).splitlines()[1:]
    assert len(rows) == 2 and len({row.index(" s / ") for row in rows}) == 1  # the figures line up
