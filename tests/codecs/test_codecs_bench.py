"""The benchmark runs and reports real payload sizes (a smoke test; timings are not checked)."""

from __future__ import annotations

import torch

from fedwave.codecs import get_codec
from fedwave.codecs.bench import CNN_PARAMS, CNN_SHAPES, format_benchmark, make_update, run_benchmark


def test_benchmark_rows() -> None:
    rows = run_benchmark(num_values=5000, repeats=1, specs=["fp32", "topk:0.1", "ef(eden:2)"])
    assert [r.codec for r in rows] == ["memcpy", "fp32", "topk:0.1", "ef(eden:2)"]
    assert rows[0].bytes == 4 * 5000
    payload = get_codec("topk:0.1").encode(make_update(5000, 0), rng=torch.Generator().manual_seed(1))
    assert rows[2].bytes == len(payload)
    assert rows[1].nmse == 0.0
    assert 0.0 < rows[3].nmse < 0.2
    text = format_benchmark(rows)
    assert text.splitlines()[1].startswith("memcpy")
    assert "bits/coord" in text


def test_default_cnn_shapes_add_up() -> None:
    total = 0
    for shape in CNN_SHAPES:
        n = 1
        for s in shape:
            n *= s
        total += n
    assert total == CNN_PARAMS == 1_199_882
