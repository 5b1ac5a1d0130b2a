"""One UE's sample-level DP-SGD of MNIST ``cnn``: the sequential user against the written-out step.

    python benchmarks/dpsgd_conv.py [--repeats 3] [--model cnn] [--dataset mnist]

One torch thread; B = 10, E = 1, z = 1, C = 1 (a UE of 600 examples: 60 Poisson batches). For each
repeat, in turn: :meth:`fedwave.users.dpsgd.UserDPSGD.compute_local_updates` (``vmap`` of ``grad`` per
example) and :func:`fedwave.engine.dpconv.train_dpsgd_conv` on the same payload and generator seed.
Prints the wall time of each per example (best of the repeats), the time of drawing one step's noise,
and the largest difference between the two updates.
"""

from __future__ import annotations

import argparse
import time

import torch

from fedwave.config import load_config
from fedwave.engine.allocator import keep_freed_memory
from fedwave.engine.convchain import conv_chain
from fedwave.engine.dpconv import train_dpsgd_conv
from fedwave.fl.run import build_simulation
from fedwave.privacy.dp.mechanisms import gaussian_noise
from fedwave.users.dpsgd import UserDPSGD


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="cnn")
    p.add_argument("--dataset", default="mnist")
    args = p.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as the fedwave command does
    cfg = load_config(
        None,
        [
            f"data.dataset={args.dataset}",
            f"model.name={args.model}",
            "fl.num_ues=100",
            "fl.batch_size=10",
            "fl.local_epochs=1",
            "fl.lr=0.05",
            "dp.level=sample",
            "dp.clip=1.0",
            "dp.noise_multiplier=1.0",
        ],
    )
    sim = build_simulation(cfg, keep_records=False)
    user = sim.driver.users[0]
    assert isinstance(user, UserDPSGD)
    layers = conv_chain(user.model, tuple(user.inputs.shape[1:]))
    assert layers is not None, f"{args.model} is not a convolution chain"
    payload = sim.driver.bs.payload()
    n = user.num_data_points
    best = {"sequential": float("inf"), "written out": float("inf")}
    updates: dict[str, list[torch.Tensor]] = {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        shared, _ = user.compute_local_updates(payload, rng=torch.Generator().manual_seed(7))
        best["sequential"] = min(best["sequential"], time.perf_counter() - t0)
        updates["sequential"] = shared["gradients"]
        t0 = time.perf_counter()
        out = train_dpsgd_conv(user, layers, payload, torch.Generator().manual_seed(7))
        best["written out"] = min(best["written out"], time.perf_counter() - t0)
        updates["written out"] = out["gradients"]
    shapes = [q.shape for q in user.model.parameters()]
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(10):
        gaussian_noise(shapes, 1.0, gen)
    noise = (time.perf_counter() - t0) / 10
    steps = user.steps_per_round()
    print(f"{args.model} on {args.dataset}: a UE of {n} examples, {steps} steps, one thread")
    for name, seconds in best.items():
        per = seconds / n * 1e3
        print(f"{name:<12} {seconds:7.2f} s  {per:7.2f} ms per example  (best of {args.repeats})")
    print(f"noise of one step ({sum(s.numel() for s in shapes):,} values): {noise * 1e3:.2f} ms")
    diff = max(float((a - b).abs().max()) for a, b in zip(updates["sequential"], updates["written out"]))
    print(f"largest difference between the two updates: {diff:.3g}")


if __name__ == "__main__":
    main()
