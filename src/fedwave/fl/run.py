"""Build and run one simulation from a :class:`~fedwave.config.Config`.

``run(cfg)`` wires the parts of a round together (data, model, users, codecs, clock, BS) and writes a
run directory as it goes: ``config.yaml`` (resolved), ``rounds.csv`` (one row per round, appended and
flushed each round), ``timeline.csv`` (one row per UE and round) and, at the end, ``summary.json``.

With differential privacy (``dp.level`` client or sample) the run is planned first
(:class:`~fedwave.fl.dp.RunPrivacy`): z is resolved (calibrated from ``dp.target_epsilon`` if set) and
written into ``config.yaml`` with the target cleared (the two keys exclude each other; the target is in
``summary.json`` under ``privacy``), every round's ``epsilon`` goes into ``rounds.csv``, and
``summary.json`` holds the final epsilon, the per-UE distribution (sample level) and whether
``dp.stop_at_epsilon`` ended the run. The users.md local noise (``local_privacy``) is reported as
"unaccounted".
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import torch

from fedwave.config import Config
from fedwave.data.datasets import Dataset
from fedwave.data.federated import dataset_for, partition_for
from fedwave.devices import training_flops_per_sample
from fedwave.engine import make_executor
from fedwave.errors import ConfigError
from fedwave.fl.dp import RunPrivacy
from fedwave.fl.driver import FederatedDriver
from fedwave.fl.summary import EventTotals, summarize
from fedwave.models import build_model
from fedwave.records import RoundRecord, UEEvent
from fedwave.rng import derive_seed
from fedwave.sim import Clock
from fedwave.users import UserDataSource
from fedwave.users.datasource import dataset_metadata

RoundHook = Callable[[RoundRecord, Sequence[UEEvent]], None]


@dataclass
class RunResult:
    """The records of a finished run, its summary, and where it was written (if anywhere)."""

    config: Config
    records: list[RoundRecord]
    events: list[UEEvent]
    summary: dict[str, Any]
    run_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The BS's global model at the end of the run (None when not kept).
    model: torch.nn.Module | None = None


@dataclass
class Simulation:
    """Everything a run needs, built from a config; ``run_rounds`` advances it."""

    cfg: Config
    dataset: Dataset
    driver: FederatedDriver
    clock: Clock
    flops_per_sample: float
    t_now: float = 0.0
    next_round: int = 0

    @property
    def privacy(self) -> RunPrivacy | None:
        """The run's differential privacy (None when ``dp.level`` is off)."""
        return self.driver.privacy

    @property
    def resolved_config(self) -> Config:
        """The config as run: with DP, z resolved into ``dp`` and ``dp.target_epsilon`` cleared."""
        return self.privacy.resolved_config() if self.privacy is not None else self.cfg

    def run_rounds(self, rounds: int) -> None:
        """Run ``rounds`` more rounds on the simulated clock (or fewer if the driver stops early).

        Under ``fl.sampling: poisson`` the clock may accept up to every UE in a round (the driver draws
        each one with probability ``fl.fraction``).
        """
        before = self.driver.totals.rounds
        fl = self.cfg.fl
        count = fl.num_ues if fl.sampling == "poisson" else fl.per_round()
        self.t_now = self.clock.run(
            self.driver, rounds, count, start_round=self.next_round, t_start=self.t_now
        )
        self.next_round += self.driver.totals.rounds - before

    @property
    def stopped_by_privacy(self) -> bool:
        """Whether ``dp.stop_at_epsilon`` ended the run before its planned rounds."""
        return self.privacy is not None and self.privacy.stopped_at_epsilon is not None


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's state (every tensor's bytes, in ``state_dict`` order): equal digests mean
    bit-identical models, across runs and machines."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_simulation(
    cfg: Config, on_round: RoundHook | None = None, *, keep_records: bool = True
) -> Simulation:
    """Load data, partition it, plan the privacy, build the model, the UEs, the BS and the clock.

    ``keep_records=False``: the driver keeps no round records (``driver.records`` stays empty), only
    their totals (``driver.totals``); for runs that stream the records to disk through ``on_round``.

    Raises:
        ConfigError: the privacy plan cannot run (``dp.target_epsilon`` unreachable,
            ``dp.stop_at_epsilon`` below one round's epsilon).
    """
    if cfg.engine.threads:
        torch.set_num_threads(cfg.engine.threads)
    ds = dataset_for(cfg)
    parts = partition_for(cfg, ds.y_train.numpy())
    data = UserDataSource.from_dataset(ds, parts)
    privacy = RunPrivacy(cfg, [len(p) for p in parts]) if cfg.dp.level != "off" else None
    # PyTorch's default initialisers draw from the global generator: seed it from a derived stream
    # inside fork_rng so the caller's global RNG state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "model-init"))
        model = build_model(cfg.model.name, tuple(ds.input_shape), ds.num_classes)
    flops = training_flops_per_sample(model, tuple(ds.input_shape), ds.num_classes)
    driver = FederatedDriver(
        cfg,
        model,
        data,
        ds.x_test,
        ds.y_test,
        make_executor(cfg.engine.executor),
        on_round,
        metadata=dataset_metadata(ds),
        privacy=privacy,
        keep_records=keep_records,
    )
    clock = Clock(cfg.wireless, cfg.fl.num_ues, flops, cfg.seed)
    return Simulation(cfg, ds, driver, clock, flops)


class RunWriter:
    """Writes a run directory incrementally: a crash leaves every finished round on disk."""

    def __init__(self, run_dir: Path, cfg: Config) -> None:
        self.dir = run_dir
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError(
                f"run directory '{run_dir}' exists and is not a directory; choose another --out"
            )
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(cfg.to_yaml())
            self._rounds: IO[str] = (run_dir / "rounds.csv").open("w", newline="")
            self._timeline: IO[str] = (run_dir / "timeline.csv").open("w", newline="")
        except OSError as exc:
            raise ConfigError(f"run directory '{run_dir}' cannot be written: {exc.strerror or exc}") from None
        self._rw: csv.DictWriter[str] | None = None
        # the timeline's csv.writer and the getter of an event's row, made with the header at the first events
        self._timeline_rows: tuple[Any, Callable[[UEEvent], tuple[Any, ...]]] | None = None

    def __call__(self, record: RoundRecord, events: Sequence[UEEvent]) -> None:
        row = record.as_dict()
        if self._rw is None:
            self._rw = csv.DictWriter(self._rounds, fieldnames=list(row), extrasaction="ignore")
            self._rw.writeheader()
        self._rw.writerow(row)
        self._rounds.flush()
        if events:  # the rows a DictWriter writes from the events' as_dict(), without making the dicts
            if self._timeline_rows is None:
                names = [f.name for f in fields(events[0])]  # UEEvent.as_dict's keys, in order
                writer = csv.writer(self._timeline)
                writer.writerow(names)
                self._timeline_rows = (writer, operator.attrgetter(*names))
            writer, values = self._timeline_rows
            writer.writerows(map(values, events))
        self._timeline.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json`` and close the files."""
        self._rounds.close()
        self._timeline.close()
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def default_run_dir(cfg: Config) -> Path:
    """``output.dir / output.name``, or a timestamped name (wall-clock time only names the folder)."""
    name = cfg.output.name or _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    return Path(cfg.output.dir) / name


def run(
    cfg: Config,
    *,
    run_dir: Path | None = None,
    on_round: RoundHook | None = None,
    keep_events: bool = True,
    keep_records: bool = True,
) -> RunResult:
    """Run ``cfg`` to the end; write ``run_dir`` if given. Returns records, events and summary.

    ``run_dir`` is created only once the simulation is built (data loaded, model, UEs and cell made),
    so a run that cannot start leaves no directory behind. ``keep_events=False``: the UE events are
    written to ``timeline.csv`` (and passed to ``on_round``) round by round but not kept, so memory
    does not grow with UEs x rounds; ``RunResult.events`` is then empty and the summary is the same.
    ``keep_records=False`` does the same for the round records (``rounds.csv``; ``RunResult.records``
    empty), so memory does not grow with the rounds either.
    """
    events: list[UEEvent] = []
    totals = EventTotals()
    writer: RunWriter | None = None

    def hook(record: RoundRecord, evs: Sequence[UEEvent]) -> None:
        totals.add(evs)
        if keep_events:
            events.extend(evs)
        if writer is not None:
            writer(record, evs)
        if on_round is not None:
            on_round(record, evs)

    sim = build_simulation(cfg, hook, keep_records=keep_records)
    resolved = sim.resolved_config
    if run_dir is not None:
        writer = RunWriter(run_dir, resolved)
    sim.run_rounds(cfg.fl.rounds)
    summary = summarize(sim.driver.totals, totals, cfg.fl.target_accuracy)
    summary["privacy"] = privacy_summary(sim)
    summary["flops_per_sample"] = sim.flops_per_sample
    summary["model_sha256"] = model_digest(sim.driver.bs.model)
    summary["portable_kernels"] = os.environ.get("FEDWAVE_PORTABLE") == "1"
    if writer is not None:
        writer.finish(summary)
    return RunResult(resolved, sim.driver.records, events, summary, run_dir, model=sim.driver.bs.model)


def privacy_summary(sim: Simulation) -> dict[str, Any]:
    """``summary.json``'s ``privacy``: the DP accounting, and the users.md local noise if any.

    Client level adds the number of UE updates clipped to S on the UE (``clipped_ue``), sent as zeros
    because they were not finite (``zeroed_ue``) and clipped again at the BS (``clipped_bs``). Without
    DP, ``epsilon`` is None. Local noise (``local_privacy``) has an absolute scale and no
    accountant: it is listed under ``local_privacy`` as "unaccounted".
    """
    out: dict[str, Any] = (
        sim.privacy.summary() if sim.privacy is not None else {"level": "off", "epsilon": None}
    )
    if sim.privacy is not None and sim.privacy.level == "client":
        for key in ("dp_clipped_ue", "dp_zeroed_ue", "dp_clipped_bs"):
            out[key[3:]] = int(sim.driver.totals.extra.get(key, 0))
    lp = sim.cfg.local_privacy
    local = {k: getattr(lp, k) for k in ("gradient_noise", "input_noise", "per_example_clipping")}
    if any(v > 0 for v in local.values()):
        out["local_privacy"] = {**local, "distribution": lp.distribution, "accounting": "unaccounted"}
    return out
