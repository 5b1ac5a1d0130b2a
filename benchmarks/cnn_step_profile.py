"""Where one SGD step of MNIST ``cnn`` at B = 10 spends its time (the ``efficiency`` task's step).

    OMP_NUM_THREADS=1 python benchmarks/cnn_step_profile.py [--batch 10] [--steps 100]

One torch thread. Prints the mean wall time of a step (forward, cross-entropy, backward, ``p -= lr g``),
its FLOPs (``FlopCounterMode``) and achieved GFLOP/s, the dense 1024x1024 matmul rate for reference, and
the torch profiler's table of the operators that took the most time over 20 steps.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

from fedwave.models.zoo import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("cnn", (1, 28, 28), 10)
    params = list(model.parameters())
    x, y = torch.randn(args.batch, 1, 28, 28), torch.randint(0, 10, (args.batch,))

    def step() -> None:
        for q in params:
            q.grad = None
        torch.nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for q in params:
                q.add_(q.grad, alpha=-0.05)

    for _ in range(10):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - t0) / args.steps
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        t1 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t1)
    print(f"step of {args.batch} samples: {seconds * 1e3:.2f} ms, {flops / 1e6:.0f} MFLOP, {flops / seconds / 1e9:.1f} GFLOP/s")
    print(f"dense fp32 matmul: {2 * 1024**3 / best / 1e9:.1f} GFLOP/s")
    with profile() as prof:
        for _ in range(20):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
