"""fedwave from Python: configs, runs, studies, attacks and the DP accountant as plain function calls.

Everything here is re-exported at the top level (``fedwave.run``, ``fedwave.make_config``...). The
command line is a thin layer over the same functions, so a config that works with ``fedwave run`` works
with :func:`run`, with the same validation and error messages (:class:`~fedwave.errors.ConfigError`).

A config is given as a :class:`~fedwave.config.Config`, a nested ``dict``, a path to a YAML file, or
nothing (the default scenario); keyword arguments set top-level keys or sections
(``fl={"rounds": 5}``, ``codec="uniform:8"``) and ``overrides`` set dotted keys
(``{"wireless.policy.name": "first_k"}`` or ``["fl.rounds=5"]``), exactly like ``-o`` on the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from torch import nn

from fedwave.config import Config, apply_overrides, config_from_dict, describe_source
from fedwave.configio import parse_yaml, read_config_file
from fedwave.errors import ConfigError
from fedwave.privacy.attacks.runner import AttackRun, TrialProgress
from fedwave.privacy.dp.plan import PrivacyPlan
from fedwave.records import RoundRecord, UEEvent
from fedwave.report.study import Study, load_study

#: What the functions of this module accept as a config.
ConfigLike = Config | Mapping[str, Any] | str | os.PathLike[str] | None
#: ``on_round(record, events)`` after every round of a run.
RoundHook = Callable[[RoundRecord, Sequence[UEEvent]], None]

__all__ = [
    "AttackResult",
    "ConfigLike",
    "RunResult",
    "attack",
    "compare",
    "epsilons",
    "make_config",
    "privacy_plan",
    "run",
]


def _yaml_text(value: Any) -> str:
    """``value`` written as the YAML scalar (or flow list/mapping) an ``-o key=value`` override parses."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def _merge(into: dict[str, Any], keys: Mapping[str, Any]) -> None:
    """Merge ``keys`` into ``into``: mappings into mappings (recursively), anything else replaced."""
    for key, value in keys.items():
        here = into.get(key)
        if isinstance(value, Mapping) and isinstance(here, dict):
            _merge(here, value)
        elif isinstance(value, Mapping):
            into[key] = {}
            _merge(into[key], value)
        else:
            into[key] = value


def config_data(
    source: ConfigLike = None,
    *,
    yaml_text: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    **keys: Any,
) -> tuple[dict[str, Any], str]:
    """The plain (unvalidated) data of a config and a description of where it came from.

    Raises:
        ConfigError: a file that cannot be read, YAML that does not parse, a bad override.
    """
    if yaml_text is not None and source is not None:
        raise ConfigError("give either a config source or yaml_text, not both")
    if isinstance(source, Config):
        data, where = source.to_dict(), "the given Config"
    elif isinstance(source, Mapping):
        data, where = dict(source), "the given dict"
    elif isinstance(source, str | os.PathLike):
        data, where = read_config_file(Path(source)), str(source)
    elif source is None and yaml_text is not None:
        loaded = parse_yaml(yaml_text, "yaml_text")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("yaml_text: the top level must be a mapping, e.g. 'fl: {rounds: 5}'")
        data, where = loaded or {}, "yaml_text"
    elif source is None:
        data, where = {}, "defaults"
    else:
        raise ConfigError(f"a config is a Config, a dict, a YAML path or None, got {type(source).__name__}")
    data = apply_overrides(data, [], Config)  # a deep copy; refuses a non-mapping top level
    _merge(data, keys)
    texts = (
        [f"{k}={_yaml_text(v)}" for k, v in overrides.items()]
        if isinstance(overrides, Mapping)
        else list(overrides)
    )
    data = apply_overrides(data, texts, Config)
    shown = [*(f"{k}=..." for k in keys), *texts]
    return data, describe_source(where, shown)


def make_config(
    source: ConfigLike = None,
    *,
    yaml_text: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    **keys: Any,
) -> Config:
    """A validated :class:`~fedwave.config.Config` from a Config, dict, YAML file or YAML text.

    Args:
        source: a Config, a nested dict, the path of a YAML file, or None (the default scenario).
        yaml_text: YAML text of a config (instead of ``source``).
        overrides: dotted keys, as a mapping ``{"fl.rounds": 5}`` or CLI strings ``["fl.rounds=5"]``.
        **keys: top-level keys or sections, merged into the config (``fl={"rounds": 5}``, ``seed=1``).

    Raises:
        ConfigError: every problem, each with its dotted key and what is allowed.

    Example:
        ``make_config(fl={"rounds": 5}, codec="uniform:8", overrides={"data.partition": "dirichlet"})``
    """
    data, where = config_data(source, yaml_text=yaml_text, overrides=overrides, **keys)
    return config_from_dict(data, where)


def _as_config(config: ConfigLike, keys: Mapping[str, Any]) -> Config:
    if isinstance(config, Config) and not keys:
        return config
    return make_config(config, **keys)


def _model_name(model: Any) -> str:
    """The ``model.name`` of a model given to :func:`run`: a name, or a class/builder registered here."""
    if isinstance(model, str):
        return model
    from fedwave.models.zoo import model_names
    from fedwave.plugins import register_model

    name = f"{getattr(model, '__module__', 'user')}:{getattr(model, '__qualname__', type(model).__name__)}"
    if name not in model_names():
        register_model(name, f"user model {name}")(model)
    return name


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list | tuple):
            out[f"{prefix}{k}"] = v
    return out


@dataclass
class RunResult:
    """A finished run as DataFrames (units of :mod:`fedwave.records`: simulated s, bytes, J).

    Attributes:
        config: the config as run (with DP, the resolved noise multiplier).
        rounds: one row per round (``round``, ``t_end`` in s, ``accuracy``, ``bytes_up``...).
        ue_events: one row per UE and round (phase times in s, bytes, SNR in dB, energy in J).
        summary: one row: totals and ratios of the run (nested keys joined with dots).
        summary_dict: the same summary as nested plain data (``summary.json``).
        model: the BS's global model after the last round.
        run_dir: the run directory written (None if ``out`` was not given).
    """

    config: Config
    rounds: pd.DataFrame
    ue_events: pd.DataFrame
    summary: pd.DataFrame
    summary_dict: dict[str, Any]
    model: nn.Module | None
    run_dir: Path | None
    raw: Any

    @property
    def final_accuracy(self) -> float:
        """Test accuracy after the last round (0..1)."""
        return float(self.summary_dict.get("final_accuracy", float("nan")))


def run(
    config: ConfigLike = None,
    *,
    model: Any = None,
    out: str | os.PathLike[str] | None = None,
    on_round: RoundHook | None = None,
    **keys: Any,
) -> RunResult:
    """Run one simulation to the end and return its records as DataFrames.

    Args:
        config: see :func:`make_config`; ``**keys`` are merged into it the same way.
        model: a model instead of ``model.name``: a class or function ``(input_shape, num_classes) ->
            nn.Module`` (registered in this process under ``module:qualname``), a model name, or the
            ``model`` section as a dict.
        out: write the run directory here (``config.yaml``, ``rounds.csv``, ``timeline.csv``,
            ``summary.json``), as ``fedwave run --out`` does; None writes nothing.
        on_round: called after every round with its record and UE events.

    Raises:
        ConfigError: a bad config; DatasetUnavailable: a dataset that is not installed.
    """
    from fedwave.fl.run import run as run_simulation

    if isinstance(model, Mapping):  # the config's model section, given as a keyword like the others
        keys = {**keys, "model": model}
    elif model is not None:
        keys = {**keys, "model": {"name": _model_name(model)}}
    cfg = _as_config(config, keys)
    raw = run_simulation(cfg, run_dir=Path(out) if out is not None else None, on_round=on_round)
    return RunResult(
        config=raw.config,
        rounds=_frame([r.as_dict() for r in raw.records]),
        ue_events=_frame([e.as_dict() for e in raw.events]),
        summary=pd.DataFrame([_flat(raw.summary)]),
        summary_dict=raw.summary,
        model=raw.model,
        run_dir=raw.run_dir,
        raw=raw,
    )


def _vary_text(value: Any) -> str:
    return value if isinstance(value, str) else _yaml_text(value)


def compare(
    config: ConfigLike = None,
    *,
    vary: Mapping[str, Sequence[Any]],
    seeds: int = 1,
    study_dir: str | os.PathLike[str] | None = None,
    on_round: Callable[[Any, RoundRecord], None] | None = None,
    on_run: Callable[[Any, str, dict[str, Any]], None] | None = None,
    **keys: Any,
) -> Study:
    """Run (or resume) a study: every combination of ``vary`` times ``seeds`` seeds, like ``fedwave
    compare``; return it loaded (:class:`~fedwave.report.study.Study`: ``runs``, ``rounds``,
    ``ue_events`` DataFrames).

    Args:
        config: the base config (see :func:`make_config`); ``**keys`` are merged into it.
        vary: config key -> values, e.g. ``{"codec": ["fp32", "uniform:8"], "fl.lr": [0.1, 0.05]}``.
        seeds: seeds per combination (the base seed, seed + 1, ...).
        study_dir: the study directory (default ``studies/study-<hash of the grid>``); an existing
            study is resumed, finished runs are not run again.
        on_round: called after every round of every run with the run and the round's record.
        on_run: called when a run finishes (or was finished already) with the run, what happened and
            details (see :func:`fedwave.fl.study.run_study`).
    """
    from fedwave.fl.study import default_study_dir, parse_vary, plan_study, run_study

    base, where = config_data(config, **keys)
    items = [f"{k}={','.join(_vary_text(v) for v in values)}" for k, values in vary.items()]
    grid = parse_vary(items)
    plan_study(base, grid, seeds, where)  # every grid point validated (and its data loaded) first
    path = Path(study_dir) if study_dir is not None else default_study_dir(base, grid, seeds)
    run_study(path, base, grid, seeds, on_round=on_round, on_run=on_run)
    return load_study(path)


@dataclass
class AttackResult:
    """A finished gradient-leakage attack: per-sample metrics and the leakage summary.

    Attributes:
        config: the config attacked.
        samples: one row per reconstructed sample: ``trial``, ``sample``, ``label``,
            ``predicted_label``, ``label_correct``, ``mse``, ``psnr`` (dB), ``ssim``.
        summary: the leakage summary (medians, threat model, wall time in s).
        run_dir: the directory written (None if ``out`` was not given).
    """

    config: Config
    samples: pd.DataFrame
    summary: dict[str, Any]
    run_dir: Path | None
    raw: AttackRun


def attack(
    config: ConfigLike = None,
    *,
    out: str | os.PathLike[str] | None = None,
    progress: TrialProgress | None = None,
    **keys: Any,
) -> AttackResult:
    """Run the ``attack`` section's gradient-leakage attack on fresh UE batches, like ``fedwave attack``."""
    from fedwave.privacy.attacks.runner import run_attack_experiment

    cfg = _as_config(config, keys)
    raw = run_attack_experiment(cfg, run_dir=Path(out) if out is not None else None, progress=progress)
    rows = [{"trial": t.trial, **vars(s)} for t in raw.trials for s in t.samples]
    return AttackResult(cfg, pd.DataFrame(rows), raw.summary, raw.run_dir, raw)


def privacy_plan(config: ConfigLike = None, **keys: Any) -> PrivacyPlan:
    """The DP accounting of a config without training (``fedwave privacy``): level, accountant, delta,
    the noise multiplier z (calibrated when ``dp.target_epsilon`` is set) and the schedules."""
    from fedwave.privacy.dp.plan import plan_privacy

    return plan_privacy(_as_config(config, keys))


def epsilons(config: ConfigLike = None, *, rounds: Sequence[int] | None = None, **keys: Any) -> pd.DataFrame:
    """Planned epsilon (at ``dp.delta``) after each round: columns ``round`` and ``epsilon`` (the
    largest over the UEs' schedules, i.e. the guarantee every UE has)."""
    plan = privacy_plan(config, **keys)  # ConfigError when dp.level is off: nothing to account
    wanted = list(rounds) if rounds is not None else list(range(1, plan.rounds + 1))
    per_schedule = plan.epsilons(wanted)
    worst = [max(values[i] for values in per_schedule.values()) for i in range(len(wanted))]
    return pd.DataFrame({"round": wanted, "epsilon": worst})
