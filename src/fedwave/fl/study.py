"""Studies: a grid of varied config keys times seeds, run into a crash-safe results store.

Every run commits each finished round, its UE events and a checkpoint in one SQLite transaction, so a
study killed at any moment (Ctrl-C, kill -9) resumes with the same command: finished runs are skipped,
an unfinished run continues from its last checkpoint, and the results equal an uninterrupted study.

Before anything runs the store is checked (round digests, checkpoint checksums, the ledger of committed
rounds): a damaged study stops with a message naming the runs and rounds, and ``run_study(..., only=...)``
(``fedwave study restart``) recomputes just those runs. The study's name is recorded once, so a study
directory can be moved or renamed and resumed from its new place.

With ``attack.in_studies`` (``fedwave compare --attack NAME``) each finished run is then attacked and
its leakage stored (:mod:`fedwave.fl.study_attack`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedwave.config import Config, apply_overrides, config_from_dict
from fedwave.configio import SHORTHANDS, parse_override
from fedwave.errors import ConfigError
from fedwave.fl.checkpoint import CheckpointError, load_checkpoint, resumable, save_checkpoint
from fedwave.fl.run import Simulation, build_simulation
from fedwave.fl.study_attack import AttackLine, attack_run, check_attack_settings
from fedwave.records import RoundRecord, UEEvent
from fedwave.report.errors import StoreError, restart_command
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
    """Split ``"a,b(c,d),[e,f]"`` on the commas outside parentheses and brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (ch in "([{") - (ch in ")]}")
        cur += ch
    out.append(cur)
    return [v.strip() for v in out if v.strip()]


def canonical_key(key: str) -> tuple[str, ...]:
    """The path a dotted key sets: ``codec`` is short for ``codec.uplink``."""
    parts = tuple(key.split("."))
    return (*parts, SHORTHANDS[parts[0]]) if len(parts) == 1 and parts[0] in SHORTHANDS else parts


def _covers(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """Whether setting ``outer`` replaces ``inner`` (the same key, or a section holding it)."""
    return inner[: len(outer)] == outer


#: Keys a study cannot vary: the seed is the study's other axis; output is the study directory.
_NOT_VARIED = {
    "seed": "seeds are not methods: use --seeds N to run seeds S..S+N-1, and -o seed=S to choose S",
    "output": "a study writes its runs into its own directory (--study); output.* has no effect",
}


def parse_vary(items: Sequence[str], overrides: Sequence[str] = ()) -> dict[str, list[str]]:
    """``["codec=fp32,uniform:8", "fl.lr=0.1,0.05"]`` -> ``{"codec": [...], "fl.lr": [...]}``.

    Refuses a key varied twice (also under two names: ``codec`` and ``codec.uplink``, or a section and
    a key inside it), the seed and ``output`` keys, and a ``-o`` override of a varied key (it would be
    silently replaced by every varied value).
    """
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
        if any(not p for p in key.split(".")):
            raise ConfigError(f"--vary '{item}': the key '{key}' has an empty part")
        if key.split(".")[0] in _NOT_VARIED:
            raise ConfigError(f"--vary {key}: {_NOT_VARIED[key.split('.')[0]]}")
        if key in vary:
            raise ConfigError(f"--vary key '{key}' is given twice; list all its values in one --vary")
        for other in vary:
            a, b = canonical_key(other), canonical_key(key)
            if _covers(a, b) or _covers(b, a):
                outer = ".".join(a if len(a) <= len(b) else b)
                raise ConfigError(
                    f"--vary {other} and --vary {key} set the same key ({outer}); "
                    "vary it once, under one name"
                )
        if len(set(values)) != len(values):
            raise ConfigError(f"--vary '{key}' repeats a value: {values}")
        vary[key] = values
    for text in overrides:
        parts = tuple(parse_override(text)[0])
        for key in vary:
            if _covers(canonical_key(key), canonical_key(".".join(parts))):
                raise ConfigError(
                    f"-o {text} would be replaced by every value of --vary {key}; drop the -o, or put "
                    "its value in the --vary list"
                )
    return vary


def _method_label(varied: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in varied.items()) or "default"


def plan_study(
    base: dict[str, Any], vary: dict[str, list[str]], seeds: int, source: str = "config"
) -> list[RunSpec]:
    """Every (combination, seed) with its validated config; any bad key or value fails here, first.

    Each grid point is validated whole (the base alone never is: ``--vary`` may supply a key the base
    needs), then each distinct data setting is loaded and partitioned and each model built, so a
    missing dataset or an impossible partition also fails before the first run trains.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    keys = list(vary)
    runs: list[RunSpec] = []
    seen: dict[str, str] = {}
    for combo in itertools.product(*(vary[k] for k in keys)):
        varied = dict(zip(keys, combo))
        label = _method_label(varied)
        overrides = [f"{k}={v}" for k, v in varied.items()]
        first = config_from_dict(apply_overrides(base, overrides, Config), f"{source}, --vary {label}")
        for i in range(seeds):
            seed = first.seed + i
            data = apply_overrides(base, [*overrides, f"seed={seed}"], Config)
            cfg = config_from_dict(data, f"{source}, --vary {label}, seed {seed}")
            digest = hashlib.sha1(json.dumps([label, seed], sort_keys=True).encode()).hexdigest()[:12]
            runs.append(RunSpec(f"r{digest}", label, seed, varied, cfg))
        same = seen.setdefault(json.dumps(first.to_dict(), sort_keys=True), label)
        if same != label:
            raise ConfigError(f"--vary: '{same}' and '{label}' give the same configuration; list each once")
    check_varied_keys_matter(runs, keys)
    check_runs_can_start(runs)
    check_attack_settings(runs)
    return runs


#: Sections whose keys do nothing while a switch is off: section -> (switch key, what "off" is, example).
_SWITCHED = {
    "dp": ("level", "off", "-o dp.level=client"),
    "adversary": ("attack", "none", "-o adversary.attack=sign_flip"),
    "faults": ("kind", "none", "-o faults.kind=nan"),
}


def check_varied_keys_matter(runs: Sequence[RunSpec], keys: Sequence[str]) -> None:
    """Refuse a varied key of a switched-off section (``dp``, ``adversary``, ``faults``) when the switch
    is off in every run: the grid would hold identical runs under different labels.

    Raises:
        ConfigError: naming the key, the switch and how to turn it on.
    """
    for key in keys:
        section, _, rest = key.partition(".")
        if section not in _SWITCHED or not rest:
            continue
        switch, off, example = _SWITCHED[section]
        if rest == switch:
            continue
        if all(getattr(getattr(r.config, section), switch) == off for r in runs):
            raise ConfigError(
                f"--vary {key}: {section}.{switch} is '{off}' in every run, so {key} changes nothing and "
                f"every value would give the same results; turn it on ({example}) or drop --vary {key}"
            )


def check_runs_can_start(runs: Sequence[RunSpec]) -> None:
    """Load each distinct dataset, partition it and build each model of ``runs`` (nothing is trained).

    Raises:
        ConfigError, DatasetUnavailable: naming the grid point that cannot start.
    """
    import torch

    from fedwave.data.federated import dataset_for, partition_for
    from fedwave.errors import FedwaveError
    from fedwave.models import build_model

    done: set[str] = set()
    for run in runs:
        cfg = run.config
        key = json.dumps([cfg.data.model_dump(mode="json"), cfg.seed, cfg.fl.num_ues, cfg.model.name])
        if key in done:
            continue
        done.add(key)
        try:
            ds = dataset_for(cfg)
            partition_for(cfg, ds.y_train.numpy())
            with torch.random.fork_rng(devices=[]):  # leaves the caller's global RNG as it was
                build_model(cfg.model.name, tuple(ds.input_shape), ds.num_classes)
        except FedwaveError as exc:
            raise type(exc)(f"run '{run.method}', seed {run.seed} cannot start: {exc}") from None


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
    only: Collection[str] | None = None,
    on_attack: AttackLine | None = None,
    workers: int = 1,
    ray: str | None = None,
) -> list[RunSpec]:
    """Run (or resume) every run of the grid into ``study_dir/study.db``; returns the plan.

    ``only`` limits the work to those run ids (the other runs are left as they are). The store is
    checked first: damage raises :class:`~fedwave.report.errors.DamagedStudyError` before any training.
    Runs whose config sets ``attack.in_studies`` are attacked once finished (see the module docstring).
    ``workers`` > 1 computes runs in that many local processes, ``ray`` (an address, or ``"local"``) as
    Ray tasks; this process stays the store's only writer (:mod:`fedwave.fl.parallel`).
    """
    plan = plan_study(base, vary, seeds)
    spec = {"base": base, "vary": vary, "seeds": seeds}
    study_dir.mkdir(parents=True, exist_ok=True)
    with ResultsStore(study_dir) as store:
        store.check()
        # The name is recorded when the study is created; a moved or renamed directory keeps it.
        store.ensure_study(store.study_name() or study_dir.name, spec)
        (study_dir / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        attacked = store.attacked_runs()
        if workers > 1 or ray is not None:
            _run_elsewhere(store, plan, only, attacked, on_round, on_run, on_attack, workers, ray)
            return plan
        for run in plan:
            if only is not None and run.run_id not in only:
                continue
            status = store.ensure_run(run.run_id, run.method, run.seed, run.config.to_dict(), run.varied)
            sim: Simulation | None = None
            if status == "done":
                if on_run is not None:
                    on_run(run, "done already", {})
            else:
                try:
                    info = _run_one(store, run, on_round)
                except Exception as exc:  # recorded, then raised: the study stops and can be resumed
                    store.set_status(run.run_id, "failed", f"{type(exc).__name__}: {exc}")
                    raise
                sim = info.pop("sim")
                if on_run is not None:
                    on_run(run, "finished", info)
            if run.config.attack.in_studies and run.run_id not in attacked:
                attack_run(store, run, sim, on_attack)
    return plan


def _run_elsewhere(
    store: ResultsStore,
    plan: Sequence[RunSpec],
    only: Collection[str] | None,
    attacked: set[str],
    on_round: RoundTick | None,
    on_run: RunLine | None,
    on_attack: AttackLine | None,
    workers: int,
    ray: str | None,
) -> None:
    """``run_study``'s loop with the runs computed by local workers or Ray tasks, committed here."""
    from fedwave.fl.parallel import Committer, run_local

    def finished(run: RunSpec) -> None:
        if run.config.attack.in_studies and run.run_id not in attacked:
            attack_run(store, run, None, on_attack)

    todo = []
    for run in plan:
        if only is not None and run.run_id not in only:
            continue
        status = store.ensure_run(run.run_id, run.method, run.seed, run.config.to_dict(), run.varied)
        if status == "done":
            if on_run is not None:
                on_run(run, "done already", {})
            finished(run)
        else:
            todo.append(run)
    if not todo:
        return
    committer = Committer(store, todo, on_round, on_run, finished)
    if ray is not None:
        from fedwave.fl.rayrun import run_ray

        run_ray(committer, todo, ray, num_cpus=max(1, workers))
    else:
        run_local(committer, todo, workers)


def _run_one(store: ResultsStore, run: RunSpec, on_round: RoundTick | None) -> dict[str, Any]:
    store.set_status(run.run_id, "running")
    holder: dict[str, Any] = {}

    def commit(record: RoundRecord, events: Sequence[UEEvent]) -> None:
        sim = holder["sim"]
        blob = (
            save_checkpoint(sim, t_now=record.t_end, next_round=record.round + 1) if resumable(sim) else None
        )
        store.commit_round(run.run_id, record, events, blob)
        holder["last"] = record
        if on_round is not None:
            on_round(run, record)

    sim = build_simulation(run.config, commit, keep_records=False)  # the store holds them
    holder["sim"] = sim
    resumed_from = None
    checkpoint = store.last_checkpoint(run.run_id) if resumable(sim) else None
    if checkpoint is not None:
        round_done, blob = checkpoint
        try:
            load_checkpoint(sim, blob)
        except CheckpointError as exc:
            raise StoreError(
                f"run {run.run_id} ({run.method}, seed {run.seed}): the checkpoint taken after round "
                f"{round_done} cannot be restored: {exc}. Restart this run from round 0 (the other runs "
                f"are kept): {restart_command(store.study_dir, [run.run_id])}"
            ) from None
        store.delete_rounds_after(run.run_id, round_done)
        resumed_from = round_done + 1
    else:
        store.delete_rounds_after(run.run_id, -1)
    remaining = run.config.fl.rounds - sim.next_round
    if remaining > 0:
        sim.run_rounds(remaining)
    store.set_status(run.run_id, "done")
    last: RoundRecord | None = holder.get("last")
    return {"resumed_from": resumed_from, "last": last, "sim": sim}


# -- restarting runs of a stored study ------------------------------------------------------------------


def load_spec(study_dir: Path) -> tuple[dict[str, Any], dict[str, list[str]], int]:
    """``(base, vary, seeds)`` the study in ``study_dir`` was created with.

    Read from the database, or from ``study.yaml`` where the database lost its study row (a lost
    ``-wal`` file). :class:`StoreError` if neither holds a spec written by ``fedwave compare``.
    """
    from fedwave.report.schema import DB_NAME

    if not (study_dir / DB_NAME).is_file() and not (study_dir / "study.yaml").is_file():
        raise StoreError(f"{study_dir} is not a study directory: it has neither {DB_NAME} nor study.yaml")
    with ResultsStore(study_dir) as store:
        spec = store.study_spec()
    where = f"{study_dir / DB_NAME}"
    if spec is None:
        where = f"{study_dir / 'study.yaml'}"
        try:
            spec = yaml.safe_load((study_dir / "study.yaml").read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise StoreError(f"{where}: the study's spec cannot be read ({exc})") from exc
    if not isinstance(spec, dict) or not {"base", "vary", "seeds"} <= set(spec):
        raise StoreError(
            f"{where} holds no study spec with base, vary and seeds: the study was not made by "
            "'fedwave compare', so its runs cannot be recomputed"
        )
    vary = {str(k): [str(v) for v in vs] for k, vs in dict(spec["vary"]).items()}
    return dict(spec["base"]), vary, int(spec["seeds"])


def find_runs(plan: Sequence[RunSpec], names: Sequence[str]) -> list[RunSpec]:
    """The runs of ``plan`` named by run id or ``METHOD/SEED`` (e.g. ``codec=fp32/1``), in plan order."""
    by_id = {r.run_id: r for r in plan}
    by_label = {f"{r.method}/{r.seed}": r for r in plan}
    chosen: set[str] = set()
    for name in names:
        run = by_id.get(name) or by_label.get(name)
        if run is None:
            listing = "\n  ".join(f"{r.run_id}  or  {r.method}/{r.seed}" for r in plan)
            raise ConfigError(f"'{name}' is not a run of this study; its runs are:\n  {listing}")
        chosen.add(run.run_id)
    return [r for r in plan if r.run_id in chosen]


def restart_runs(
    study_dir: Path,
    names: Sequence[str],
    *,
    damaged: bool = False,
    on_round: RoundTick | None = None,
    on_run: RunLine | None = None,
    on_attack: AttackLine | None = None,
) -> list[RunSpec]:
    """Discard what the named runs stored and compute them again from round 0; return those runs.

    ``damaged`` adds every run the integrity check finds damaged. The other runs are kept as they are.
    Refused (:class:`~fedwave.report.errors.DamagedStudyError`, nothing changed) while runs outside the
    chosen ones are damaged too, since the study could not be resumed or reported anyway.
    """
    from fedwave.report.errors import DamagedStudyError

    base, vary, seeds = load_spec(study_dir)
    plan = plan_study(base, vary, seeds)
    with ResultsStore(study_dir) as store:
        found = store.damage()
        wanted = list(names) + ([d.run_id for d in found] if damaged else [])
        runs = find_runs(plan, list(dict.fromkeys(wanted)))
        ids = {r.run_id for r in runs}
        others = [d for d in found if d.run_id not in ids]
        if others:
            restart = [*(r.run_id for r in runs), *(d.run_id for d in others)]
            raise DamagedStudyError(study_dir, others, restart=restart)
        for run in runs:
            store.reset_run(run.run_id)
    if runs:
        run_study(
            study_dir, base, vary, seeds, on_round=on_round, on_run=on_run, only=ids, on_attack=on_attack
        )
    return runs
