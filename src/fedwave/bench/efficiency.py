"""Training efficiency of the executors: achieved FLOP/s of local training over dense matmul FLOP/s.

    fedwave bench efficiency [--rounds 1] [--epochs 5] [-o key=value ...]

The issue-12 task: MNIST ``cnn``, 100 UEs, C = 0.1, E = 5, B = 10 (lr 0.05). For each executor
(``sequential``, ``batched``) the run's local training is timed (only the executor's work, i.e. the UEs'
SGD steps, not encoding or the clock); achieved FLOP/s = counted training FLOPs per sample (the
``FlopCounterMode`` convention) x samples processed / that wall time. The reference is the dense fp32
matmul rate of this process (1024 x 1024 products, best of 10, the same torch thread count), measured
before and after the training; the efficiency is given against the higher of the two (the stricter
reading: this host's rate drifts by 10-20 % over minutes), and against the lower in brackets.

With ``-o engine.device=cuda`` the UEs train on the GPU and the reference is the GPU's: 8192 x 8192
products in IEEE float32 (no TF32, as the training; :mod:`fedwave.engine.device`), each timed to the
end of its kernels; the local training is timed to the end of its kernels too.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from fedwave.config import load_config
from fedwave.engine.device import training_device
from fedwave.fl.run import build_simulation

TASK = [
    "data.dataset=mnist",
    "model.name=cnn",
    "fl.num_ues=100",
    "fl.fraction=0.1",
    "fl.batch_size=10",
    "fl.lr=0.05",
]


def matmul_flops_per_s(n: int | None = None, repeats: int = 10, device: str = "cpu") -> float:
    """Dense fp32 matmul FLOP/s on ``device`` (2 n^3 per product), best of ``repeats``.

    ``n`` defaults to 1024 on the CPU and 8192 on a GPU (where a 1024 product is too short to time).
    """
    dev = training_device(device)
    size = n if n is not None else (1024 if dev.type == "cpu" else 8192)
    a, b = torch.randn(size, size, device=dev), torch.randn(size, size, device=dev)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _finish(dev)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _finish(dev)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best


def _finish(device: torch.device) -> None:
    """Wait for the kernels queued on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class _Timed:
    """Wraps an executor: adds the wall time of every ``map`` call (to the end of its kernels on
    ``device``) to ``seconds``."""

    def __init__(self, inner: Any, device: torch.device) -> None:
        self.inner = inner
        self.device = device
        self.seconds = 0.0

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
        _finish(self.device)
        t0 = time.perf_counter()
        out: list[Any] = self.inner.map(fn, tasks)
        _finish(self.device)
        self.seconds += time.perf_counter() - t0
        return out


def training_flops_per_s(
    executor: str, rounds: int, epochs: int, overrides: Sequence[str]
) -> tuple[float, float]:
    """(achieved training FLOP/s, local-training wall seconds) of ``rounds`` rounds with ``executor``."""
    cfg = load_config(
        None,
        [
            *TASK,
            f"fl.local_epochs={epochs}",
            f"fl.rounds={rounds}",
            f"engine.executor={executor}",
            *overrides,
        ],
    )
    sim = build_simulation(cfg, keep_records=False)
    timed = _Timed(sim.driver.executor, torch.device(cfg.engine.device))
    sim.driver.executor = timed
    sim.run_rounds(rounds)
    samples = sim.driver.totals.samples
    return sim.flops_per_sample * samples / timed.seconds, timed.seconds


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fedwave bench efficiency", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="rounds per executor (10 UEs each)")
    p.add_argument("--epochs", type=int, default=5, help="E, local epochs")
    p.add_argument("-o", "--override", action="append", default=[], help="extra config override")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = load_config(None, [*TASK, *args.override]).engine.device
    where = "1 thread" if device == "cpu" else device
    before = matmul_flops_per_s(device=device)
    print(f"dense fp32 matmul ({where})   {before / 1e9:8.2f} GFLOP/s  (before training)")
    rates = {}
    for executor in ("sequential", "batched"):
        rates[executor], seconds = training_flops_per_s(executor, args.rounds, args.epochs, args.override)
        rate = rates[executor] / 1e9
        print(f"{executor:<11} training       {rate:8.2f} GFLOP/s  ({seconds:.2f} s of local training)")
    after = matmul_flops_per_s(device=device)
    print(f"dense fp32 matmul ({where})   {after / 1e9:8.2f} GFLOP/s  (after training)")
    peak = max(before, after)  # the host's rate drifts: the higher reading is the stricter reference
    for executor, rate in rates.items():
        lower = rate / min(before, after)
        print(f"{executor:<11} efficiency     {rate / peak:8.2f} of matmul ({lower:.2f} of the lower)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
