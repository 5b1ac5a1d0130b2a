"""A study driven from Python: two codecs x two seeds, then accuracy against simulated time, plotted
from the study's DataFrames with matplotlib.

    python examples/study_plot.py [OUTPUT_DIR]

Writes ``OUTPUT_DIR/accuracy_vs_time.png`` (default: the current directory) and prints the last round of
every run. Running it again resumes the study (finished runs are not run again).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt

import fedwave

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
out.mkdir(parents=True, exist_ok=True)
study = fedwave.compare(
    fl={"rounds": 4, "num_ues": 10},
    model={"name": "mlp"},
    vary={"codec": ["fp32", "uniform:4"]},
    seeds=2,
    study_dir=out / "study",
)
rounds = study.rounds  # one row per run and round: method, seed, round, t_end (s), accuracy, bytes_up...

fig, ax = plt.subplots(figsize=(5, 3.5))
for method, runs in rounds.groupby("method"):
    mean = runs.groupby("round")[["t_end", "accuracy"]].mean()  # mean over the seeds
    ax.plot(mean["t_end"], mean["accuracy"], marker="o", label=method)
ax.set_xlabel("simulated time (s)")
ax.set_ylabel("test accuracy")
ax.legend()
fig.tight_layout()
fig.savefig(out / "accuracy_vs_time.png", dpi=100)

last = rounds.sort_values("round").groupby(["method", "seed"]).tail(1)
print(last[["method", "seed", "round", "accuracy", "t_end", "bytes_up"]].to_string(index=False))
print(f"wrote {out / 'accuracy_vs_time.png'}")
