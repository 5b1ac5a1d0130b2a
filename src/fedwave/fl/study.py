"""Studies: a grid of varied config keys times seeds, run into a crash-safe results store.

Every run commits each finished round, its UE events and a checkpoint in one SQLite transaction, so a
study killed at any moment (Ctrl-C, kill -9) resumes with the same command: finished runs are skipped,
an unfinished run continues from its last checkpoint, and the results equal an uninterrupted study.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedwave.config import Config, apply_overrides, config_from_dict
from fedwave.errors import ConfigError
from fedwave.fl.checkpoint import load_checkpoint, resumable, save_checkpoint
from fedwave.fl.run import build_simulation
from fedwave.records import RoundRecord, UEEvent
from fedwave.report.store import ResultsStore


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its method (the varied values), seed and resolved config."""

    run_id: str
    method: str
    seed: int
    varied: dict[str, Any]
    config: Config


def split_values(text: str) -> list[str]:
    """Split ``"a,b(c,d),e"`` on the commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    out.append(cur)
    return [v.strip() for v in out if v.strip()]


def parse_vary(items: Sequence[str]) -> dict[str, list[str]]:
    """``["codec=fp32,uniform:8", "fl.lr=0.1,0.05"]`` -> ``{"codec": [...], "fl.lr": [...]}``."""
    vary: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(
                f"--vary '{item}' must look like key=v1,v2,... (e.g. --vary codec=fp32,uniform:8)"
            )
        key, raw = item.split("=", 1)
        key = key.strip()
        values = split_values(raw)
        if not key or not values:
            raise ConfigError(f"--vary '{item}' needs a key and at least one value")
        if key in vary:
            raise ConfigError(f"--vary key '{key}' is given twice; list all its values in one --vary")
        if len(set(values)) != len(values):
            raise ConfigError(f"--vary '{key}' repeats a value: {values}")
        vary[key] = values
    return vary


def _method_label(varied: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in varied.items()) or "default"


def plan_study(base: dict[str, Any], vary: dict[str, list[str]], seeds: int) -> list[RunSpec]:
    """Every (combination, seed) with its validated config; any bad key or value fails here, first."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    base_seed = int(base.get("seed", 0))
    keys = list(vary)
    runs: list[RunSpec] = []
    for combo in itertools.product(*(vary[k] for k in keys)):
        varied = dict(zip(keys, combo))
        label = _method_label(varied)
        overrides = [f"{k}={v}" for k, v in varied.items()]
        for i in range(seeds):
            seed = base_seed + i
            data = apply_overrides(base, [*overrides, f"seed={seed}"])
            cfg = config_from_dict(data, f"--vary {label}, seed {seed}")
            digest = hashlib.sha1(json.dumps([label, seed], sort_keys=True).encode()).hexdigest()[:12]
            runs.append(RunSpec(f"r{digest}", label, seed, varied, cfg))
    return runs


def default_study_dir(base: dict[str, Any], vary: dict[str, list[str]], seeds: int) -> Path:
    """``studies/study-<hash>``: the same command finds the same directory (and resumes it)."""
    digest = hashlib.sha1(json.dumps([base, vary, seeds], sort_keys=True).encode()).hexdigest()[:10]
    return Path("studies") / f"study-{digest}"


RunLine = Callable[[RunSpec, str, dict[str, Any]], None]
RoundTick = Callable[[RunSpec, RoundRecord], None]


def run_study(
    study_dir: Path,
    base: dict[str, Any],
    vary: dict[str, list[str]],
    seeds: int,
    *,
    on_round: RoundTick | None = None,
    on_run: RunLine | None = None,
) -> list[RunSpec]:
    """Run (or resume) every run of the grid into ``study_dir/study.db``; returns the plan."""
    plan = plan_study(base, vary, seeds)
    spec = {"base": base, "vary": vary, "seeds": seeds}
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with ResultsStore(study_dir) as store:
        store.ensure_study(study_dir.name, spec)
        for run in plan:
            status = store.ensure_run(run.run_id, run.method, run.seed, run.config.to_dict(), run.varied)
            if status == "done":
                if on_run is not None:
                    on_run(run, "done already", {})
                continue
            try:
                info = _run_one(store, run, on_round)
            except Exception as exc:  # recorded, then raised: the study stops and can be resumed
                store.set_status(run.run_id, "failed", f"{type(exc).__name__}: {exc}")
                raise
            if on_run is not None:
                on_run(run, "finished", info)
    return plan


def _run_one(store: ResultsStore, run: RunSpec, on_round: RoundTick | None) -> dict[str, Any]:
    store.set_status(run.run_id, "running")
    holder: dict[str, Any] = {}

    def commit(record: RoundRecord, events: list[UEEvent]) -> None:
        sim = holder["sim"]
        blob = (
            save_checkpoint(sim, t_now=record.t_end, next_round=record.round + 1) if resumable(sim) else None
        )
        store.commit_round(run.run_id, record, events, blob)
        holder["last"] = record
        if on_round is not None:
            on_round(run, record)

    sim = build_simulation(run.config, commit)
    holder["sim"] = sim
    resumed_from = None
    checkpoint = store.last_checkpoint(run.run_id) if resumable(sim) else None
    if checkpoint is not None:
        round_done, blob = checkpoint
        load_checkpoint(sim, blob)
        store.delete_rounds_after(run.run_id, round_done)
        resumed_from = round_done + 1
    else:
        store.delete_rounds_after(run.run_id, -1)
    remaining = run.config.fl.rounds - sim.next_round
    if remaining > 0:
        sim.run_rounds(remaining)
    store.set_status(run.run_id, "done")
    last: RoundRecord | None = holder.get("last")
    return {"resumed_from": resumed_from, "last": last}
