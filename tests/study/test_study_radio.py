"""The issue-14 comparison: access schemes x selection rules in one study, on the same cell and seeds.

What each method did is read back from study.db with sqlite3 (not fedwave's readers): the uplink times,
who was selected, the energy; the report carries the accuracy-against-energy figure.
"""

from __future__ import annotations

import sqlite3
import statistics
from pathlib import Path

from fedwave.cli import main

GRID = [
    "--vary",
    "wireless.access.scheme=fdma,aircomp",
    "--vary",
    "fl.selection=random,best_channel",
]
SMALL = [
    "data.max_train=400",
    "model.name=mlp",
    "fl.num_ues=12",
    "fl.clients_per_round=3",
    "fl.rounds=3",
]


def test_schemes_and_selection_rules_side_by_side(tmp_path: Path) -> None:
    study = tmp_path / "radio"
    argv = ["compare", *[a for o in SMALL for a in ("-o", o)], *GRID, "--study", str(study)]
    assert main(argv) == 0
    with sqlite3.connect(study / "study.db") as conn:
        methods = {m for (m,) in conn.execute("SELECT method FROM runs WHERE status = 'done'")}
        uplink = {
            m: [t for (t,) in conn.execute(
                "SELECT r.time_uplink FROM rounds r JOIN runs u USING (run_id) WHERE u.method = ?", (m,)
            )]
            for m in methods
        }  # fmt: skip
        picked = {
            m: [
                (rnd, ue)
                for rnd, ue in conn.execute(
                    "SELECT e.round, e.ue FROM ue_events e JOIN runs u USING (run_id) WHERE u.method = ?",
                    (m,),
                )
            ]
            for m in methods
        }
        energy = dict(
            conn.execute(
                "SELECT u.method, SUM(r.energy_j) FROM rounds r JOIN runs u USING (run_id) GROUP BY 1"
            )
        )
    conn.close()
    assert len(methods) == 4
    name = "wireless.access.scheme={}, fl.selection={}"
    for rule in ("random", "best_channel"):
        air, fdma = name.format("aircomp", rule), name.format("fdma", rule)
        # the analog phase is far shorter than three UEs sharing the band digitally
        assert statistics.mean(uplink[air]) < 0.1 * statistics.mean(uplink[fdma])
        assert 0 < energy[air] < energy[fdma]
    for scheme in ("fdma", "aircomp"):
        # the same cell and seed: best_channel picks other UEs than random does, 3 per round
        best, rand = picked[name.format(scheme, "best_channel")], picked[name.format(scheme, "random")]
        assert len(best) == len(rand) == 9 and best != rand
    report = (study / "report.html").read_text(encoding="utf-8")
    assert 'id="fig-acc-energy"' in report and 'id="fig-acc-time"' in report
