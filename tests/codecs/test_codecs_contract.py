"""The contract every codec meets: round trip, real sizes, unbiasedness, determinism, zero in zero out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from fedwave.codecs import CodecState, available_codecs, get_codec
from fedwave.codecs.base import Codec

# --- documented payload sizes -----------------------------------------------------------------------


def _varint_len(value: int) -> int:
    return max(1, math.ceil(value.bit_length() / 7))


def _rice_bytes(idx: torch.Tensor) -> int:
    """Smallest Rice-coded size (stream bytes + its varint length) of sorted indices, over all parameters."""
    gaps = torch.diff(idx, prepend=torch.tensor([-1])) - 1
    best = min(int((gaps >> j).sum()) + idx.numel() * (j + 1) for j in range(41))
    nbytes = math.ceil(best / 8)
    return nbytes + _varint_len(nbytes)


def qsgd_symbol_bytes(d: int, base: int) -> int:
    """Bytes of ``d`` base-``base`` symbols as qsgd documents them: ``g`` symbols per ``w``-bit word with
    ``base**g <= 2**56`` and ``w / g`` smallest (first ``g`` on ties), then the last ``d mod g`` symbols
    in one word of ``bits(base**r - 1)`` bits starting on a byte boundary."""
    options = [(g, (base**g - 1).bit_length()) for g in range(1, 57) if base**g <= 2**56]
    g, w = min(options, key=lambda gw: (gw[1] / gw[0], gw[0]))
    full, rest = divmod(d, g)
    return math.ceil(full * w / 8) + (math.ceil((base**rest - 1).bit_length() / 8) if rest else 0)


def documented_bits(spec: str, tensors: list[torch.Tensor], decoded: list[torch.Tensor]) -> tuple[int, int]:
    """(documented body size in bits, extra allowance in bits) for a payload of ``spec``.

    Written from each codec's documented layout, independently of the codec's code. Data-dependent
    parts (Elias-gamma levels, top-k indices) are recomputed from the decoded values.
    """
    name, *args = spec.split(":")
    if name.startswith("ef("):
        return documented_bits(spec[3:-1], tensors, decoded)
    ds = [t.numel() for t in tensors]
    d_all = sum(ds)
    bits = 0
    extra = 0
    if name in ("drive", "eden"):
        b = 1 if name == "drive" else int(args[0])
        blocks = math.ceil(d_all / 2**16) + 6 if d_all else 0
        pad = min(1023, max(d_all - 1, 0))
        return 64 + 8 * math.ceil(b * d_all / 8), 32 * blocks + b * pad + 8
    if name == "randk":
        bits += 64
    for t, y, d in zip(tensors, decoded, ds):
        if d == 0:
            continue
        x = t.double().reshape(-1)
        if name == "fp32":
            bits += 32 * d
        elif name in ("fp16", "bf16"):
            bits += 16 * d
        elif name == "uniform":
            b = int(args[0])
            block = int(args[1]) if len(args) > 1 else d
            bits += 64 * math.ceil(d / block) + 8 * math.ceil(b * d / 8)
        elif name == "qsgd":
            s = int(args[0])
            if len(args) == 1:
                bits += 32 + 8 * qsgd_symbol_bytes(d, 2 * s + 1)
            else:
                norm = float(x.float().norm())
                levels = (y.double().reshape(-1).abs() * s / norm).round().long() if norm else 0 * x.long()
                stream = int((2 * torch.floor(torch.log2(levels.double() + 1)) + 1).sum())
                stream += int((levels > 0).sum())
                nbytes = math.ceil(stream / 8)
                bits += 32 + 8 * (nbytes + _varint_len(nbytes))
        elif name == "terngrad":
            bits += 32 + 8 * math.ceil(d / 5)
        elif name == "sign":
            bits += 32 + 8 * math.ceil(d / 8)
        elif name == "topk":
            k = min(d, max(1, math.ceil(float(args[0]) * d - 1e-9)))
            idx = torch.nonzero(y.reshape(-1)).view(-1)
            assert idx.numel() == k
            index = 0 if k == d else min(math.ceil(d / 8), _rice_bytes(idx))
            bits += 32 * k + 8 + 8 * index
        elif name == "randk":
            bits += 32 * min(d, max(1, math.ceil(float(args[0]) * d - 1e-9)))
        elif name == "powersgd":
            r = int(args[0])
            n, m = (t.shape[0], d // t.shape[0]) if t.dim() >= 2 else (0, 0)
            q = min(r, n, m)
            bits += 32 * q * (n + m) if t.dim() >= 2 and q * (n + m) < n * m else 32 * d
        else:
            raise AssertionError(f"no documented size for {spec}")
    return bits, extra


def header_bytes(tensors: list[torch.Tensor]) -> tuple[int, int]:
    """Smallest and largest header + checksum size: magic, version, id, params (<= 9), count, shapes, CRC."""
    shapes_min = sum(1 + t.dim() for t in tensors)
    shapes_max = sum(1 + sum(_varint_len(s) for s in t.shape) for t in tensors)
    return 3 + 1 + shapes_min + 4, 3 + 9 + _varint_len(len(tensors)) + shapes_max + 4


# --- tests ---------------------------------------------------------------------------------------------


def test_every_family_is_in_the_suite(all_specs: list[str]) -> None:
    tested = {s.split(":")[0] for s in all_specs if not s.startswith("ef(")}
    listed = {info.name.split(":")[0] for info in available_codecs() if not info.name.startswith("ef(")}
    assert listed <= tested
    assert any(s.startswith("ef(") for s in all_specs)


def test_round_trip_shapes_dtypes_values(spec: str, update: list[torch.Tensor]) -> None:
    codec = get_codec(spec)
    before = [t.clone() for t in update]
    payload = codec.encode(update, rng=torch.Generator().manual_seed(1), state={})
    assert isinstance(payload, bytes)
    assert all(torch.equal(a, b) for a, b in zip(before, update)), "encode modified its input"
    out = codec.decode(payload)
    assert [o.shape for o in out] == [t.shape for t in update]
    assert [o.dtype for o in out] == [t.dtype for t in update]
    for o, t in zip(out, update):
        assert bool(torch.isfinite(o).all())
        if codec.exact and t.dtype != torch.float64:
            assert torch.equal(o, t)


def test_empty_update(spec: str) -> None:
    codec = get_codec(spec)
    assert codec.decode(codec.encode([], rng=torch.Generator().manual_seed(0), state={})) == []


def test_zero_in_zero_out(spec: str) -> None:
    codec = get_codec(spec)
    zeros = [torch.zeros(6, 5), torch.zeros(7), torch.zeros(3, 4, 2)]
    state: CodecState = {}
    for _ in range(2):
        out = codec.decode(codec.encode(zeros, rng=torch.Generator().manual_seed(0), state=state))
        assert all(torch.equal(o, z) for o, z in zip(out, zeros))


def test_payload_length_is_the_documented_size(spec: str, update: list[torch.Tensor]) -> None:
    codec = get_codec(spec)
    big = [torch.randn(40, 30, generator=torch.Generator().manual_seed(2)), *update]
    for tensors in (update, big):
        payload = codec.encode(tensors, rng=torch.Generator().manual_seed(3), state={})
        decoded = codec.decode(payload)
        body, extra = documented_bits(spec, tensors, decoded)
        low, high = header_bytes(tensors)
        assert body + 8 * low <= 8 * len(payload) <= body + 8 * high + extra, (body, len(payload))


def test_deterministic(spec: str, update: list[torch.Tensor]) -> None:
    codec = get_codec(spec)
    runs = []
    for _ in range(2):
        rng = torch.Generator().manual_seed(42)
        state: CodecState = {}
        runs.append([codec.encode(update, rng=rng, state=state) for _ in range(3)])
    assert runs[0] == runs[1]
    again = get_codec(spec)  # a second instance decodes the same
    assert all(torch.equal(a, b) for a, b in zip(codec.decode(runs[0][2]), again.decode(runs[0][2])))


def _draws(codec: Codec, x: list[torch.Tensor], samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat input (float64) and ``samples`` flat decodes of it with fresh randomness (rows)."""
    rng = torch.Generator().manual_seed(7)
    flat = torch.cat([t.reshape(-1) for t in x]).double()
    rows = [
        torch.cat([t.reshape(-1) for t in codec.decode(codec.encode(x, rng=rng))]).double()
        for _ in range(samples)
    ]
    return flat, torch.stack(rows)


def _bias_ratio(flat: torch.Tensor, draws: torch.Tensor, delta: float = 1e-6) -> float:
    """Largest ``|mean - x| / tol`` over coordinates; above 1 means biased (per-coordinate test).

    ``tol`` is the empirical Bernstein bound (Maurer & Pontil, 2009): with probability at least
    ``1 - delta`` the mean of ``n`` i.i.d. draws with sample variance ``V`` and range ``R`` is within
    ``sqrt(2 V L / n) + 7 R L / (3 (n - 1))`` of its expectation, ``L = ln(2 / delta)``. With
    ``delta = 1e-6`` the first term is 5.4 standard errors; the second covers rarely drawn values, which
    a sample variance alone would miss (a coordinate close to a quantization level). ``R`` is the range
    of all decoded values, a bound on every coordinate's range.
    """
    n, log_term = draws.shape[0], math.log(2 / delta)
    spread = float(draws.max() - draws.min())
    tol = torch.sqrt(2 * draws.var(dim=0) * log_term / n) + 7 * spread * log_term / (3 * (n - 1))
    tol = tol + 1e-6 * flat.abs().max()  # float32 rounding of the decoded values
    return float(((draws.mean(dim=0) - flat).abs() / tol).max())


def _projection_z(flat: torch.Tensor, draws: torch.Tensor, directions: int = 8) -> float:
    """Largest |z| of the mean error projected on x and on random directions (z in standard errors).

    A projection sums hundreds of coordinates, so its mean is close to normal (no rare-value problem)
    and the test sees small biases spread over many coordinates, e.g. a wrong scale. A projection with
    no variance at all must be exact.
    """
    g = torch.Generator().manual_seed(99)
    dirs = torch.cat([flat.unsqueeze(1), torch.randn(flat.numel(), directions, generator=g).double()], 1)
    dirs = dirs / dirs.norm(dim=0)
    proj = (draws - flat) @ dirs  # (samples, directions + 1)
    mean, se = proj.mean(dim=0), proj.std(dim=0) / math.sqrt(draws.shape[0])
    exact = se <= 1e-6 * flat.norm()
    if bool((mean[exact].abs() > 1e-5 * flat.norm()).any()):
        return math.inf
    return float((mean[~exact].abs() / se[~exact]).max()) if bool((~exact).any()) else 0.0


def _unbiased_input() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return [torch.randn(20, 30, generator=g), torch.randn(100, generator=g) * 2 + 0.5]


def test_unbiased(unbiased_spec: str) -> None:
    """The mean of n decodes is within the empirical Bernstein bound of x on every coordinate, and
    within 5 standard errors of x along x and along random directions."""
    flat, draws = _draws(get_codec(unbiased_spec), _unbiased_input(), samples=600)
    assert _bias_ratio(flat, draws) < 1.0
    assert _projection_z(flat, draws) < 5.0


class _Scaled(Codec):
    """A test codec: an unbiased codec's output times ``1 + eps`` (a known multiplicative bias)."""

    def __init__(self, spec: str, eps: float) -> None:
        self.inner, self.eps, self.spec = get_codec(spec), eps, f"scaled({spec})"

    def encode(self, tensors: Sequence[torch.Tensor], *, rng: torch.Generator, state: object = None) -> bytes:
        return self.inner.encode(tensors, rng=rng)

    def decode(self, payload: bytes, *, expected: object = None) -> list[torch.Tensor]:
        return [t * (1 + self.eps) for t in self.inner.decode(payload)]


@pytest.mark.parametrize("biased", ["sign", "topk:0.3", "powersgd:1"])
def test_bias_check_detects_biased_codecs(biased: str) -> None:
    flat, draws = _draws(get_codec(biased), _unbiased_input(), samples=100)
    assert _bias_ratio(flat, draws) > 1.0 or _projection_z(flat, draws) > 5.0


@pytest.mark.parametrize(("base", "eps"), [("uniform:8", 0.01), ("qsgd:16", 0.03), ("eden:2", 0.03)])
def test_bias_check_power(base: str, eps: float) -> None:
    """The check sees a scale error of a few percent with the sample count test_unbiased uses."""
    flat, draws = _draws(_Scaled(base, eps), _unbiased_input(), samples=600)
    assert _projection_z(flat, draws) > 5.0
