"""The benchmark reports real payload sizes and errors, on an update shaped like the default model."""

from __future__ import annotations

import torch

from fedwave.codecs import get_codec
from fedwave.codecs.bench import CNN_PARAMS, CNN_SHAPES, format_benchmark, make_update, run_benchmark
from fedwave.models.zoo import build_model


def test_benchmark_rows_are_real_sizes_and_errors() -> None:
    """Each row's bytes is the length of the payload the codec produces for the benchmark's update (same
    seed), bits/coord is 8 bytes / d, and NMSE is the error of decoding that payload (timings are not
    checked)."""
    specs = ["fp32", "topk:0.1", "ef(eden:2)"]
    rows = run_benchmark(num_values=5000, repeats=1, specs=specs)
    assert [r.codec for r in rows] == ["memcpy", *specs]
    assert rows[0].bytes == 4 * 5000
    update = make_update(5000, 0)
    flat = torch.cat([t.reshape(-1) for t in update]).double()
    for row, spec in zip(rows[1:], specs):
        codec = get_codec(spec)
        payload = codec.encode(update, rng=torch.Generator().manual_seed(1), state={})
        decoded = torch.cat([t.reshape(-1) for t in codec.decode(payload)]).double()
        assert row.bytes == len(payload)
        assert row.bits_per_coord == 8 * len(payload) / 5000
        assert row.nmse == float((decoded - flat).square().sum()) / float(flat.square().sum())
    assert rows[1].nmse == 0.0
    assert rows[2].nmse > 0.0
    text = format_benchmark(rows).splitlines()
    assert text[0].split() == ["codec", "bytes", "bits/coord", "NMSE", "enc", "MB/s", "dec", "MB/s"]
    assert [line.split()[:2] for line in text[1:]] == [[r.codec, str(r.bytes)] for r in rows]


def test_benchmark_update_has_the_default_models_shapes() -> None:
    """CNN_SHAPES / CNN_PARAMS are the parameters of the default model (convnet) on 28x28 images with 10
    classes, and the benchmark's update has exactly those shapes."""
    model = build_model("convnet", (1, 28, 28), 10)
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == CNN_SHAPES
    assert sum(p.numel() for p in model.parameters()) == CNN_PARAMS
    assert [tuple(t.shape) for t in make_update(CNN_PARAMS, 0)] == shapes
