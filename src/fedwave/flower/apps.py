"""A Flower ClientApp and ServerApp that run a fedwave config's UEs, and a one-call simulation.

The ClientApp trains UE ``partition-id`` with :class:`~fedwave.flower.trainer.FedwaveUEs` and returns its
model; :class:`~fedwave.flower.mod.CodecMod` (its only mod) turns that into a codec payload. The ServerApp
runs ``CodecStrategy(FedAvg(...), codec)`` for ``cfg.fl.rounds`` rounds with every UE in every round (once
per codec when given several: each run starts afresh from the initial model, on the same nodes),
weighting by ``num-examples`` (the samples a UE holds, as fedwave's BS does with ``fl.weighting:
samples``), and evaluates the global model on the BS's test split after each round.

:func:`run_flower` runs both in Flower's simulation engine (Ray) and returns what happened per round.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fedwave.codecs import get_codec
from fedwave.config import Config
from fedwave.errors import ConfigError
from fedwave.flower.mod import CodecMod, partition_ue
from fedwave.flower.strategy import CodecStrategy, RoundLog
from fedwave.flower.trainer import FedwaveUEs, check_bridgeable
from fedwave.flower.wire import ROUND_CONFIG, to_record, to_tensors


@dataclass
class FlowerRound:
    """One round of a Flower run: test accuracy (fraction) and loss (nats) after it, and its traffic."""

    round: int
    accuracy: float
    loss: float
    log: RoundLog


@dataclass
class FlowerRun:
    """One codec's run in :func:`run_flower`: the rounds and the final global parameters."""

    codec: str
    rounds: list[FlowerRound] = field(default_factory=list)
    parameters: list[torch.Tensor] = field(default_factory=list)


def client_app(cfg: Config) -> ClientApp:
    """A ClientApp training UE ``partition-id`` of ``cfg``, its update encoded by :class:`CodecMod`."""
    app = ClientApp(mods=[CodecMod(seed=cfg.seed)])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        ues = FedwaveUEs.cached(cfg)
        config = msg.content.config_records["config"]
        round_ = int(config[ROUND_CONFIG]) - 1  # type: ignore[arg-type]
        trained, samples = ues.train(
            partition_ue(context), round_, to_tensors(msg.content.array_records["arrays"])
        )
        content = RecordDict(
            {"arrays": to_record(ues.names, trained), "metrics": MetricRecord({"num-examples": samples})}
        )
        return Message(content, reply_to=msg)

    return app


def server_app(cfg: Config, codecs: Sequence[str], out: list[FlowerRun]) -> ServerApp:
    """A ServerApp running ``CodecStrategy(FedAvg)`` over every UE of ``cfg``, once per codec; it appends
    one :class:`FlowerRun` per codec to ``out``."""
    app = ServerApp()
    specs = [get_codec(c).spec for c in codecs]

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        for spec in specs:
            out.append(_run_one(cfg, spec, grid))

    return app


def _run_one(cfg: Config, codec: str, grid: Grid) -> FlowerRun:
    n = cfg.fl.num_ues
    ues = FedwaveUEs.cached(cfg)
    fedavg = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n)
    strategy = CodecStrategy(fedavg, codec)
    evals: dict[int, tuple[float, float]] = {}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        e = ues.evaluate(to_tensors(arrays))
        evals[server_round] = (e.accuracy, e.loss)
        return MetricRecord({"accuracy": e.accuracy, "loss": e.loss})

    result = strategy.start(
        grid=grid,
        initial_arrays=to_record(ues.names, ues.initial_parameters()),
        num_rounds=cfg.fl.rounds,
        train_config=ConfigRecord(),
        evaluate_fn=evaluate,
    )
    out = FlowerRun(strategy.codec.spec)
    for log in strategy.log:
        acc, loss = evals[log.round]
        out.rounds.append(FlowerRound(log.round, acc, loss, log))
    out.parameters = to_tensors(result.arrays)
    return out


def run_flower(cfg: Config, codecs: Sequence[str] | None = None, *, num_cpus: int = 2) -> list[FlowerRun]:
    """Run ``cfg`` (its data, model, UEs, rounds and local SGD) as a Flower app in the simulation engine.

    Args:
        cfg: a fedwave config Flower can reproduce (see :func:`~fedwave.flower.trainer.check_bridgeable`).
        codecs: the uplink codec specs, one run each in the same simulation (default
            ``[cfg.codec.uplink]``).
        num_cpus: CPUs Ray may use (each ClientApp takes one).

    Flower's telemetry and Ray's usage statistics are switched off (unless set otherwise in the
    environment); Ray is shut down before returning.

    Raises:
        ConfigError: the config cannot run as a Flower app, or the run ended without a result.
    """
    check_bridgeable(cfg)
    specs = [get_codec(c).spec for c in (codecs or [cfg.codec.uplink])]
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from flwr.simulation import run_simulation

    out: list[FlowerRun] = []
    backend = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": num_cpus, "num_gpus": 0},
    }
    try:
        run_simulation(
            server_app=server_app(cfg, specs, out),
            client_app=client_app(cfg),
            num_supernodes=cfg.fl.num_ues,
            backend_config=backend,  # type: ignore[arg-type]
        )
    finally:
        _shutdown_ray()
    done = [len(r.rounds) for r in out]
    if done != [cfg.fl.rounds] * len(specs):
        raise ConfigError(f"the Flower runs finished {done} of {cfg.fl.rounds} rounds each; see their log")
    return out


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
