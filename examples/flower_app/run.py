"""Run fedwave's UEs as a Flower 1.41 app, their updates sent as fedwave codec payloads.

    .venv/bin/python examples/flower_app/run.py --codec uniform:8

The ClientApp trains fedwave UE ``partition-id`` on its share of the digits data (fedwave's users layer:
same split, initial model and local SGD as ``fedwave run``), and ``fedwave.flower.CodecMod`` replaces the
trained model in its reply by the bytes of ``codec.encode(update)``. The ServerApp's strategy is
``fedwave.flower.CodecStrategy(FedAvg(...))``: it decodes each payload, rebuilds the client's model and lets
FedAvg aggregate. Flower's simulation engine (Ray) runs both. Per round the script prints the test
accuracy of the global model and the bytes each UE's message carried.

``--codec`` may be repeated to compare codecs in one simulation; ``--check`` also runs fedwave on the same
config (every UE every round, no radio effects on the model) and prints how far the two global models
are apart. Needs the extra: ``pip install 'fedwave[flower]'``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, TextIO

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from fedwave.config import Config, load_config
from fedwave.errors import FedwaveError

if TYPE_CHECKING:
    from fedwave.flower.apps import FlowerRun


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", action="append", help="uplink codec spec (repeatable); default fp32")
    p.add_argument("--ues", type=int, default=5, help="UEs (Flower nodes), all trained every round")
    p.add_argument("--rounds", type=int, default=3, help="FL rounds")
    p.add_argument("--seed", type=int, default=0, help="run seed (data split, model, SGD, codecs)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs for Flower's simulation engine")
    p.add_argument("--check", action="store_true", help="also run fedwave and compare the global models")
    p.add_argument("--verbose", action="store_true", help="show Flower's own log")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    """The fedwave config both sides run: digits, an MLP, every UE every round, no radio effects."""
    return load_config(
        None,
        [
            f"seed={args.seed}",
            "data.dataset=digits",
            "model.name=mlp",
            f"fl.num_ues={args.ues}",
            f"fl.rounds={args.rounds}",
            "fl.fraction=1.0",
            "wireless.policy.name=sync",
            "wireless.cell.fading.model=none",
        ],
    )


def simulate(args: argparse.Namespace) -> tuple[Config, list[FlowerRun]]:
    """Run the Flower app once per codec of ``args``; the config and the runs.

    Raises:
        FedwaveError: a bad codec spec, or ``fedwave.flower`` without Flower installed.
    """
    from fedwave.flower.apps import run_flower  # FlowerUnavailable (a FedwaveError) without flwr

    if not args.verbose:  # Flower logs every step of every round at INFO
        from flwr.common.logger import update_console_handler

        update_console_handler(level=logging.WARNING)
    cfg = make_config(args)
    return cfg, run_flower(cfg, args.codec or ["fp32"], num_cpus=args.cpus)


def print_rounds(runs: list[FlowerRun], out: TextIO) -> None:
    """Per codec and round: test accuracy and loss of the global model, bytes of each UE's message."""
    print(
        f"{'codec':<14} {'round':>5} {'accuracy':>9} {'loss':>8} {'bytes/UE':>10}  bytes per UE message",
        file=out,
    )
    for run in runs:
        for r in run.rounds:
            sizes = [r.log.payload_bytes[ue] for ue in sorted(r.log.payload_bytes)]
            mean = sum(sizes) / len(sizes)
            line = f"{run.codec:<14} {r.round:>5} {r.accuracy:>9.4f} {r.loss:>8.4f} {mean:>10.0f}  {sizes}"
            print(line, file=out)


def print_check(cfg: Config, runs: list[FlowerRun], out: TextIO) -> None:
    """Run fedwave on the same config and codec; print how far the two global models are apart."""
    import torch

    from fedwave.fl.run import build_simulation

    for run in runs:
        sim = build_simulation(
            cfg.model_copy(update={"codec": cfg.codec.model_copy(update={"uplink": run.codec})})
        )
        sim.run_rounds(cfg.fl.rounds)
        fw = [p.detach() for p in sim.driver.bs.model.parameters()]
        diff = max(float((a - b).abs().max()) for a, b in zip(fw, run.parameters))
        same = all(torch.equal(a, b) for a, b in zip(fw, run.parameters))
        print(
            f"{run.codec}: max |w_flower - w_fedwave| = {diff:.3g}{' (bit for bit)' if same else ''}",
            file=out,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg, runs = simulate(args)
    except FedwaveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_rounds(runs, sys.stdout)
    if args.check:
        print_check(cfg, runs, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
