"""The ``vs_flower`` task as a plain Flower 1.41 app: run by path, it never imports fedwave.

    python flower_task.py [--ues 100] [--rounds 20] [--epochs 1] [--batch 10] [--lr 0.05] [--cpus 2]

McMahan et al.'s 2NN (fc200-fc200-fc, ReLU) on scikit-learn's 8x8 digits (pixels / 16, normalised by the
training split's mean and std, a stratified 80/20 split), the training split dealt IID to ``--ues`` Flower
nodes. Every node trains every round: ``--epochs`` epochs of plain SGD on batches of ``--batch``
(reshuffled each epoch). The ServerApp runs Flower's ``FedAvg`` (weighted by examples) and evaluates the
global model on the test split after each round, as ``fedwave run`` does. Flower's simulation engine (Ray)
runs the nodes. Prints the final test accuracy.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # Flower is imported where it is used: importing this module needs no Flower
    from flwr.app import ArrayRecord, Context, Message, MetricRecord
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp


def load_split(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits in [0, 1] normalised by the training split's mean and std, stratified 80/20 train/test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.2, stratify=y, random_state=seed)
    mean, std = xtr.mean(), xtr.std()  # one channel, as fedwave normalises the digits
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    f = torch.float32
    return (torch.tensor(xtr, dtype=f), torch.tensor(ytr), torch.tensor(xte, dtype=f), torch.tensor(yte))


def make_model() -> torch.nn.Module:
    """The 2NN for 64 inputs and 10 classes."""
    return torch.nn.Sequential(
        torch.nn.Linear(64, 200), torch.nn.ReLU(), torch.nn.Linear(200, 200), torch.nn.ReLU(),
        torch.nn.Linear(200, 10),
    )  # fmt: skip


_CACHE: dict[str, Any] = {}


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if "data" not in _CACHE:
        _CACHE["data"] = load_split(seed)
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] = _CACHE["data"]
    return data


def client_app(args: argparse.Namespace) -> ClientApp:
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        xtr, ytr, _, _ = _data(args.seed)
        node = int(context.node_config["partition-id"])
        idx = np.array_split(np.random.default_rng(args.seed).permutation(len(ytr)), args.ues)[node]
        x, y = xtr[idx], ytr[idx]
        model = make_model()
        model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
        opt = torch.optim.SGD(model.parameters(), lr=args.lr)
        gen = torch.Generator().manual_seed(args.seed * 100_003 + node)
        for _ in range(args.epochs):
            for batch in torch.randperm(len(y), generator=gen).split(args.batch):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                opt.step()
        content = RecordDict(
            {"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord({"num-examples": len(y)})}
        )
        return Message(content, reply_to=msg)

    return app


def server_app(args: argparse.Namespace, out: list[float]) -> ServerApp:
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
    from flwr.serverapp import ServerApp
    from flwr.serverapp.strategy import FedAvg

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        torch.manual_seed(args.seed)
        model = make_model()
        _, _, xte, yte = _data(args.seed)
        n = args.ues
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n)

        def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            model.load_state_dict(arrays.to_torch_state_dict())
            with torch.no_grad():
                acc = float((model(xte).argmax(1) == yte).float().mean())
            out.append(acc)
            return MetricRecord({"accuracy": acc})

        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=args.rounds,
            train_config=ConfigRecord(),
            evaluate_fn=evaluate,
        )

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ues", type=int, default=100)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpus", type=int, default=2)
    args = p.parse_args(argv)
    from flwr.common.logger import update_console_handler
    from flwr.simulation import run_simulation

    update_console_handler(level=logging.WARNING)
    accuracies: list[float] = []
    backend = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": args.cpus, "num_gpus": 0},
    }
    run_simulation(
        server_app=server_app(args, accuracies),
        client_app=client_app(args),
        num_supernodes=args.ues,
        backend_config=backend,
    )
    if len(accuracies) < args.rounds:
        print(f"flower: only {len(accuracies)} of {args.rounds} rounds evaluated", file=sys.stderr)
        return 1
    print(f"flower final accuracy {accuracies[-1]:.4f} after {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
