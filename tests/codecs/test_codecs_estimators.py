"""Codec-specific properties: QSGD's variance bound, DRIVE/EDEN error, Lloyd-Max tables, the rotation."""

from __future__ import annotations

import math

import pytest
import torch

from fedwave.codecs import get_codec
from fedwave.codecs.lloydmax import lloyd_max_normal
from fedwave.codecs.rotation import block_sizes, fwht

# Lloyd-Max quantizers of N(0, 1) from the literature (Max, 1960): MSE and positive centroids.
MAX_1960 = {
    1: (1 - 2 / math.pi, [math.sqrt(2 / math.pi)]),
    2: (0.1175, [0.4528, 1.510]),
    3: (0.03454, [0.2451, 0.7560, 1.344, 2.152]),
    4: (0.009497, [0.1284, 0.3881, 0.6568, 0.9424, 1.256, 1.618, 2.069, 2.733]),
}


def _nmse(codec_spec: str, x: torch.Tensor, seed: int) -> float:
    codec = get_codec(codec_spec)
    y = codec.decode(codec.encode([x], rng=torch.Generator().manual_seed(seed)))[0]
    return float((y.double() - x.double()).square().sum() / x.double().square().sum())


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_lloyd_max_tables_match_the_literature(bits: int) -> None:
    mse, positive = MAX_1960[bits]
    centroids, bounds, computed = lloyd_max_normal(bits)
    assert computed == pytest.approx(mse, rel=1e-3)
    assert centroids[len(positive) :].tolist() == pytest.approx(positive, abs=6e-4)
    assert torch.allclose(centroids, -centroids.flip(0))
    assert torch.allclose(bounds, (centroids[1:] + centroids[:-1]) / 2)


def test_lloyd_max_high_bit_tables_are_fast_and_ordered() -> None:
    for bits in (5, 6, 7, 8):
        centroids, _, mse = lloyd_max_normal(bits)
        assert centroids.numel() == 2**bits
        assert bool((centroids[1:] > centroids[:-1]).all())
        # Panter-Dite high-resolution approximation: sqrt(3) pi / 2 * 4**-bits
        assert mse == pytest.approx(math.sqrt(3) * math.pi / 2 * 4.0**-bits, rel=0.2)


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [
        ("drive", math.pi / 2 - 1),
        ("eden:1", math.pi / 2 - 1),
        ("eden:2", MAX_1960[2][0] / (1 - MAX_1960[2][0])),
        ("eden:4", MAX_1960[4][0] / (1 - MAX_1960[4][0])),
    ],
)
def test_rotation_codec_nmse_matches_theory(rotation: str, expected: float) -> None:
    """For a large block the rotated coordinates are near normal, and the unbiased estimator's NMSE is
    D / (1 - D) with D the quantizer's MSE on N(0, 1): pi/2 - 1 at 1 bit (DRIVE)."""
    x = torch.randn(2**16, generator=torch.Generator().manual_seed(3))
    got = sum(_nmse(rotation, x, seed) for seed in range(3)) / 3
    assert got == pytest.approx(expected, rel=0.03)


def _small_blocks() -> dict[str, torch.Tensor]:
    """Inputs on which one randomized Hadamard rotation is biased: 77 log-normal values (heavy tail),
    and 77 small values with one entry a hundred times larger."""
    g = torch.Generator().manual_seed(0)
    lognormal = torch.exp(torch.randn(77, generator=g))
    dominant = torch.randn(77, generator=g) * 0.1
    dominant[5] = 10.0
    return {"lognormal": lognormal, "dominant": dominant}


def _whole_vector_bias(spec: str, x: torch.Tensor, samples: int) -> tuple[float, float, float]:
    """``(z, ||b|| / ||x||, resolution)`` of the bias ``b = E[x_hat] - x`` of the whole vector.

    With ``b_hat`` the mean of ``n`` decodes minus ``x`` and ``S`` their sample covariance, an unbiased
    estimator has ``E[n ||b_hat||^2] = tr S`` and (the mean being close to normal) ``Var[n ||b_hat||^2]
    = 2 tr(S^2)``; ``z = (n ||b_hat||^2 - tr S) / sqrt(2 tr S^2)`` is the excess in standard deviations.
    ``resolution = sqrt(tr S / n) / ||x||`` is the relative bias that ``n`` samples can just resolve.
    """
    codec = get_codec(spec)
    rng = torch.Generator().manual_seed(1)
    draws = torch.stack([codec.decode(codec.encode([x], rng=rng))[0].double() for _ in range(samples)])
    bias = draws.mean(dim=0) - x.double()
    cov = torch.cov(draws.T)
    tr, tr2 = float(torch.trace(cov)), float((cov * cov).sum())
    norm = float(x.double().norm())
    if tr2 == 0.0:  # no variance at all: the estimate is deterministic, so it must be exact
        return (math.inf if float(bias.norm()) > 1e-5 * norm else 0.0), float(bias.norm()) / norm, 0.0
    z = (samples * float(bias @ bias) - tr) / math.sqrt(2 * tr2)
    return z, float(bias.norm()) / norm, math.sqrt(tr / samples) / norm


@pytest.mark.parametrize(
    ("rotation", "block"), [("drive", "lognormal"), ("drive", "dominant"), ("eden:2", "dominant")]
)
def test_rotation_codecs_whole_vector_bias(rotation: str, block: str) -> None:
    """8.9: the whole vector's bias (the component along x is exact by construction, so the bias that
    one rotation leaves is orthogonal to x) is within 5 standard deviations of zero with 200 samples.
    One rotation gave 8.5% (dominant) and 29% (log-normal) of ||x||, a z of thousands."""
    z, relative, resolution = _whole_vector_bias(rotation, _small_blocks()[block], samples=200)
    assert z < 5.0, f"bias {relative:.2%} of ||x|| (resolution {resolution:.2%}), z = {z:.1f}"


@pytest.mark.slow
@pytest.mark.parametrize("rotation", ["drive", "eden:2", "eden:4"])
@pytest.mark.parametrize("block", ["lognormal", "dominant"])
def test_rotation_codecs_whole_vector_bias_2000_samples(rotation: str, block: str) -> None:
    """The same at 2000 samples: a bias of about 1.3% of ||x|| (drive) would be seen."""
    z, relative, resolution = _whole_vector_bias(rotation, _small_blocks()[block], samples=2000)
    assert z < 5.0, f"bias {relative:.2%} of ||x|| (resolution {resolution:.2%}), z = {z:.1f}"


def test_rotation_codecs_are_unbiased_along_x() -> None:
    """The unbiased scale makes <x_hat, x> = ||x||^2 exactly, for any rotation."""
    x = torch.randn(3000, generator=torch.Generator().manual_seed(4)) * torch.linspace(0.1, 3, 3000)
    for spec in ("drive", "eden:2", "eden:4"):
        codec = get_codec(spec)
        y = codec.decode(codec.encode([x], rng=torch.Generator().manual_seed(1)))[0]
        assert float(y @ x) == pytest.approx(float(x @ x), rel=1e-4)


@pytest.mark.parametrize("log2", [0, 1, 3, 6, 7, 11])
def test_fwht_is_the_hadamard_matrix(log2: int) -> None:
    n = 1 << log2
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    x = torch.randn(3, n, generator=torch.Generator().manual_seed(log2), dtype=torch.float64)
    got = fwht(x.float()).double()
    assert torch.allclose(got, x @ h, atol=1e-4 * math.sqrt(n))


def test_block_layout_covers_with_little_padding() -> None:
    for d in [1, 2, 3, 1000, 1024, 1025, 65536, 65537, 1_199_882, 5_000_001]:
        sizes = block_sizes(d)
        assert all(s & (s - 1) == 0 for s in sizes)
        assert d <= sum(sizes) < d + max(1024, 1)
        assert sizes == sorted(sizes, reverse=True)
    assert block_sizes(0) == []


@pytest.mark.parametrize("levels", [1, 2, 8])
@pytest.mark.parametrize("kind", ["normal", "flat"])
@pytest.mark.parametrize("elias", [False, True])
def test_qsgd_variance_bound(levels: int, kind: str, elias: bool) -> None:
    """E||Q(x) - x||^2 <= min(d / s^2, sqrt(d) / s) ||x||^2 (Alistarh et al., 2017, Lemma 3.1): the
    sample mean may exceed the bound by at most 5 standard errors. The flat vector (all |x_i| equal)
    nearly attains the sqrt(d)/s bound when s is small."""
    d, n = 256, 300
    g = torch.Generator().manual_seed(levels)
    x = (
        torch.randn(d, generator=g)
        if kind == "normal"
        else torch.ones(d) * torch.randn(d, generator=g).sign()
    )
    codec = get_codec(f"qsgd:{levels}" + (":elias" if elias else ""))
    errors = torch.tensor(
        [float((codec.decode(codec.encode([x], rng=g))[0] - x).double().square().sum()) for _ in range(n)]
    )
    bound = min(d / levels**2, math.sqrt(d) / levels) * float(x.double().square().sum())
    assert float(errors.mean()) - 5 * float(errors.std()) / math.sqrt(n) <= bound
    if kind == "flat" and levels == 1:
        assert float(errors.mean()) > 0.8 * bound  # the bound is tight here: the test has power


def test_qsgd_elias_is_smaller_when_levels_are_small() -> None:
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    sizes = {}
    for spec in ("qsgd:4", "qsgd:4:elias"):
        sizes[spec] = len(get_codec(spec).encode([x], rng=torch.Generator().manual_seed(0)))
    assert sizes["qsgd:4:elias"] < 0.5 * sizes["qsgd:4"]


def test_topk_keeps_the_largest_and_picks_the_smaller_index_code() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5000, generator=g)
    for fraction, bitmap_expected in ((0.001, False), (0.5, True)):
        codec = get_codec(f"topk:{fraction}")
        payload = codec.encode([x], rng=g)
        y = codec.decode(payload)[0]
        k = math.ceil(fraction * x.numel())
        kept = torch.nonzero(y).view(-1)
        assert kept.numel() == k
        assert torch.equal(y[kept], x[kept])
        assert float(x.abs()[kept].min()) >= float(x.abs().sort(descending=True).values[k - 1])
        mode = payload[15 + 4 * k]  # header: 3 + 8 (r) + 1 (count) + 1 (dtype, ndim) + 2 (varint 5000)
        assert (mode == 0) == bitmap_expected  # 0: bitmap, 2 + j: Rice with parameter j
        if not bitmap_expected:
            assert len(payload) < 15 + 4 * k + 1 + 20 + 4


def test_randk_regenerates_indices_from_the_payload_seed() -> None:
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)) + 5
    codec = get_codec("randk:0.1")
    y1 = codec.decode(codec.encode([x], rng=torch.Generator().manual_seed(1)))[0]
    y2 = codec.decode(codec.encode([x], rng=torch.Generator().manual_seed(2)))[0]
    assert int((y1 != 0).sum()) == 100
    assert not torch.equal(y1 != 0, y2 != 0)
    kept = y1 != 0
    assert torch.allclose(y1[kept], x[kept] * 10)


def test_uniform_per_block_ranges() -> None:
    x = torch.cat([torch.randn(64) * 0.01, torch.randn(64) * 100])
    per_tensor = _nmse("uniform:4", x, 0)
    per_block = _nmse("uniform:4:64", x, 0)
    assert per_block < per_tensor


@pytest.mark.slow
def test_drive_nmse_at_model_scale() -> None:
    x = torch.randn(1_199_882, generator=torch.Generator().manual_seed(0))
    assert _nmse("drive", x, 0) == pytest.approx(math.pi / 2 - 1, rel=0.01)


@pytest.mark.parametrize(
    ("levels", "size"),
    [
        # header 13 bytes (14 for s = 255: a 2-byte varint), norm 4 bytes, then the symbols:
        (1, 13 + 4 + 196 + 3),  # 3 symbols: 34 words of 29 symbols in 46 bits, then 14 in 23 bits
        (16, 13 + 4 + 630 + 7),  # 33 symbols: 90 words of 11 in 56 bits, then 10 in 51 bits
        (255, 14 + 4 + 1125),  # 511 symbols: one per 9-bit word
    ],
)
def test_qsgd_fixed_width_payload_size_is_exact(levels: int, size: int) -> None:
    """8.11: 1000 values cost about log2(2s + 1) bits each (1.59 bits for s = 1, not 2; 5.1 for s = 16,
    not 6), the exact byte count worked out by hand from the documented layout."""
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    payload = get_codec(f"qsgd:{levels}").encode([x], rng=torch.Generator().manual_seed(1))
    assert len(payload) == size
