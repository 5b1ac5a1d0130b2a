"""Where one SGD step of MNIST ``cnn`` at B = 10 spends its time (the ``efficiency`` task's step).

    OMP_NUM_THREADS=1 python benchmarks/cnn_step_profile.py [--batch 10] [--steps 100]

One torch thread. Prints the mean wall time of a step (forward, cross-entropy, backward, ``p -= lr g``),
its FLOPs (``FlopCounterMode``) and achieved GFLOP/s, the dense 1024x1024 matmul rate for reference, and
the torch profiler's table of the operators that took the most time over 20 steps.

Then the ceiling the convolutions set: each ``Conv2d`` of the step timed alone on its own input shape
(its forward, and its backward as autograd asks for it: weight and bias gradients, and the input
gradient except for the first layer), best of 5 runs of 20, with its FLOPs and GFLOP/s. Dividing the
step's FLOPs by the convolutions' time alone gives the ``efficiency`` figure the step would reach if
everything else in it (the ``Linear`` layers, pooling, ReLU, loss, the SGD update) took no time.
Last, autograd's step against the batched executor's written-out step of the same model
(:mod:`fedwave.engine.convchain`), interleaved, best of six.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

from fedwave.engine.convchain import conv_chain, conv_step
from fedwave.models.zoo import build_model


def _best_seconds(fn: Callable[[], object], repeats: int = 5, inner: int = 20) -> float:
    """The best over ``repeats`` of the mean wall time of ``inner`` calls of ``fn`` (s)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def conv_ceiling(model: nn.Module, x: torch.Tensor, step_flops: int, matmul: float) -> None:
    """Print each convolution's forward and backward rate, and the efficiency ceiling they set."""
    inputs: dict[str, torch.Tensor] = {}
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    hooks = [
        m.register_forward_pre_hook(lambda _m, a, name=name: inputs.__setitem__(name, a[0].detach()))
        for name, m in convs.items()
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    total = 0.0
    for k, (name, conv) in enumerate(convs.items()):
        a, w = inputs[name], conv.weight.detach()
        out = conv(a).detach()
        g = torch.randn_like(out)
        args = (conv.stride, conv.padding, conv.dilation, conv.groups)
        mask = [k > 0, True, conv.bias is not None]  # autograd forms no input gradient for the first layer

        def fwd(a: torch.Tensor = a, conv: nn.Conv2d = conv) -> object:
            return conv._conv_forward(
                a, conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
            )

        bias = None if conv.bias is None else [w.shape[0]]

        def bwd(
            a: torch.Tensor = a,
            w: torch.Tensor = w,
            g: torch.Tensor = g,
            mask: list[bool] = mask,
            bias: list[int] | None = bias,
            args: tuple[object, ...] = args,
        ) -> object:
            return torch.ops.aten.convolution_backward(g, a, w, bias, *args[:3], False, [0, 0], args[3], mask)

        macs = out.numel() * (w.shape[1] * w.shape[2] * w.shape[3])  # per pass: one product of each
        passes = {"forward": (fwd, 2 * macs), "backward": (bwd, 2 * macs * (2 if mask[0] else 1))}
        for label, (fn, flops) in passes.items():
            seconds = _best_seconds(fn)
            total += seconds
            print(
                f"{name:<12} {label:<9} {seconds * 1e3:6.2f} ms  {flops / 1e6:6.0f} MFLOP  "
                f"{flops / seconds / 1e9:5.1f} GFLOP/s = {flops / seconds / matmul:.2f} of matmul"
            )
    print(
        f"convolutions alone: {total * 1e3:.2f} ms a step; the step's {step_flops / 1e6:.0f} MFLOP in that "
        f"time would be {step_flops / total / 1e9:.1f} GFLOP/s = {step_flops / total / matmul:.2f} of matmul"
    )


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
    rate = flops / seconds / 1e9
    print(
        f"step of {args.batch} samples: {seconds * 1e3:.2f} ms, {flops / 1e6:.0f} MFLOP, {rate:.1f} GFLOP/s"
    )
    print(f"dense fp32 matmul: {2 * 1024**3 / best / 1e9:.1f} GFLOP/s")
    with profile() as prof:
        for _ in range(20):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    conv_ceiling(model, x, flops, 2 * 1024**3 / best)
    compare_written_out(model, x, y, step, flops, 2 * 1024**3 / best)


def compare_written_out(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Callable[[], None], flops: int, matmul: float
) -> None:
    """Autograd's step against the batched executor's written-out step (:mod:`fedwave.engine.convchain`):
    the same SGD step, interleaved six times (30 steps each), best mean of each."""
    layers = conv_chain(model, tuple(x.shape[1:]))
    assert layers is not None
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    steps = {"autograd": step, "written out": lambda: conv_step(layers, own, x, y, 0.05, 0.0)}
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(6):
        for label, fn in steps.items():
            best[label] = min(best[label], _best_seconds(fn, repeats=1, inner=30))
    for label, seconds in best.items():
        rate = flops / seconds
        share = rate / matmul
        print(f"{label:<12} step {seconds * 1e3:6.2f} ms  {rate / 1e9:5.1f} GFLOP/s = {share:.2f} of matmul")


if __name__ == "__main__":
    main()
