"""Codec benchmark (not a test): payload size, error and speed on a model-sized update.

Run ``python -m fedwave.codecs.bench`` (set ``OMP_NUM_THREADS=1`` for one-core numbers). It prints, per
codec: payload bytes (``len(payload)``, header included), bits per coordinate, normalized MSE
``||x_hat - x||^2 / ||x||^2``, and encode / decode throughput in MB/s of float32 input
(``4 d / 10**6`` MB over the best of ``repeats`` wall-clock timings). The first row, ``memcpy``, is a plain
copy of the same float32 vector timed in the same run, as the reference.

The update has the tensor shapes of the default CNN (1,199,882 parameters: conv 3x3 1->32, conv 3x3
32->64, max-pool, fc 9216->128, fc 128->10) when ``num_values`` is that count, else one flat tensor.
Values are a heavy-tailed mixture: normal with a per-tensor scale ``1/sqrt(fan_in)``, 1% of them ten
times larger. This module reads the host clock; simulation code never does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from fedwave.codecs.registry import get_codec

CNN_PARAMS = 1_199_882
CNN_SHAPES: list[tuple[int, ...]] = [
    (32, 1, 3, 3),
    (32,),
    (64, 32, 3, 3),
    (64,),
    (128, 9216),
    (128,),
    (10, 128),
    (10,),
]
DEFAULT_SPECS = (
    "fp32",
    "fp16",
    "bf16",
    "uniform:8",
    "uniform:4",
    "uniform:2",
    "uniform:1",
    "uniform:4:256",
    "qsgd:255",
    "qsgd:16",
    "qsgd:1",
    "qsgd:16:elias",
    "qsgd:1:elias",
    "terngrad",
    "sign",
    "topk:0.1",
    "topk:0.01",
    "randk:0.01",
    "drive",
    "eden:1",
    "eden:2",
    "eden:4",
    "eden:8",
    "powersgd:4",
    "ef(topk:0.01)",
    "ef(powersgd:4)",
)


@dataclass(frozen=True)
class BenchRow:
    """One codec's result: bytes, bits per coordinate, NMSE, encode and decode MB/s (float32 input)."""

    codec: str
    bytes: int
    bits_per_coord: float
    nmse: float
    encode_mbps: float
    decode_mbps: float


def make_update(num_values: int, seed: int) -> list[torch.Tensor]:
    """The benchmark's update: CNN-shaped if ``num_values == CNN_PARAMS``, else one flat tensor."""
    g = torch.Generator().manual_seed(seed)
    shapes = CNN_SHAPES if num_values == CNN_PARAMS else [(num_values,)]
    out = []
    for shape in shapes:
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        x = torch.randn(shape, generator=g) / max(fan_in, 1) ** 0.5
        spikes = torch.rand(shape, generator=g) < 0.01
        out.append(torch.where(spikes, 10 * x, x))
    return out


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_benchmark(
    num_values: int = CNN_PARAMS,
    repeats: int = 3,
    specs: Sequence[str] | None = None,
    seed: int = 0,
) -> list[BenchRow]:
    """Encode and decode one update with each codec; the first row is the ``memcpy`` reference."""
    update = make_update(num_values, seed)
    flat = torch.cat([t.reshape(-1) for t in update])
    d = flat.numel()
    mb = 4 * d / 1e6
    t_copy = _best_time(lambda: flat.clone(), repeats)
    rows = [BenchRow("memcpy", 4 * d, 32.0, 0.0, mb / t_copy, mb / t_copy)]
    energy = float(flat.double().square().sum())
    for spec in specs or DEFAULT_SPECS:
        codec = get_codec(spec)
        rng = torch.Generator().manual_seed(seed + 1)
        payload = codec.encode(update, rng=rng, state={})  # also warms caches (Lloyd-Max tables)

        t_enc = _best_time(partial(codec.encode, update, rng=rng, state={}), repeats)
        t_dec = _best_time(partial(codec.decode, payload), repeats)
        decoded = torch.cat([t.reshape(-1).double() for t in codec.decode(payload)])
        nmse = float((decoded - flat.double()).square().sum()) / energy if energy else 0.0
        rows.append(BenchRow(codec.spec, len(payload), 8 * len(payload) / d, nmse, mb / t_enc, mb / t_dec))
    return rows


def format_benchmark(rows: Sequence[BenchRow]) -> str:
    """A fixed-width table of benchmark rows."""
    lines = [f"{'codec':<16} {'bytes':>10} {'bits/coord':>10} {'NMSE':>10} {'enc MB/s':>9} {'dec MB/s':>9}"]
    for r in rows:
        lines.append(
            f"{r.codec:<16} {r.bytes:>10d} {r.bits_per_coord:>10.3f} {r.nmse:>10.3g} "
            f"{r.encode_mbps:>9.1f} {r.decode_mbps:>9.1f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    rows = run_benchmark()
    print(f"update: {CNN_PARAMS} float32 values (default CNN), best of 3, 1 thread")
    print(format_benchmark(rows))
