"""``powersgd:r``: rank-``r`` PowerSGD (Vogels et al., 2019), one power iteration with warm start.

A tensor with two or more dimensions is read as the matrix ``M`` of shape ``(shape[0], rest)``
(``n x m``). With ``q = min(r, n, m)`` and ``Q`` (``m x q``) from the UE's state (random normal the first
time): ``P = orth(M Q)``, ``Q' = M^T P``; the payload carries ``P`` and ``Q'`` and the decoder returns
``P Q'^T``. ``Q'`` is kept in the state as the next call's warm start, so repeated calls refine the
subspace. Biased; wrap it in ``ef(...)`` to recover what it drops.

Tensors with fewer than two dimensions, and matrices where ``q (n + m) >= n m`` (no saving), are sent
as raw float32.

Error: ``P`` has orthonormal columns, so the decoded ``P Q'^T = P P^T M`` is the orthogonal projection of
``M`` on the span of ``P`` and ``||M - P P^T M||^2 = ||M||^2 - ||P^T M||^2``: the codec never adds error.
A warm start can be nearly orthogonal to a new ``M``, so the encoder guarantees a minimum: when the
captured energy ``||Q'||^2`` is below ``q/m`` of ``||M||^2``, it restarts the power iteration from the
``q`` columns of ``M`` with the largest norms, whose span alone holds at least ``q/m`` of ``||M||^2``.
Hence ``||C(M) - M||^2 <= (1 - q/m) ||M||^2`` for every input: a contraction with ``delta >= q/m``,
which ``ef(powersgd:r)`` uses as it is (as Vogels et al. do). A matrix of very large or very small
values is scaled by a power of two before the iteration (:mod:`fedwave.codecs.pow2`), so large finite or
denormal inputs decode finite.

Body, per tensor: ``P`` then ``Q'`` (float32, row-major), or the raw values. Size: ``32 q (n + m)``
bits per low-rank matrix, ``32 d`` otherwise. State keys: ``"q.<tensor index>"``.
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import CodecState, FramedCodec, expect_args, parse_int
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer, varint
from fedwave.codecs.pow2 import ldexp, normalize_rows, sum_squares


def low_rank_shape(shape: tuple[int, ...], rank: int) -> tuple[int, int, int] | None:
    """``(n, m, q)`` if a tensor of ``shape`` is sent in low rank, else ``None`` (sent raw)."""
    if len(shape) < 2:
        return None
    n = shape[0]
    m = 1
    for s in shape[1:]:
        m *= s
    q = min(rank, n, m)
    if q == 0 or q * (n + m) >= n * m:
        return None
    return n, m, q


def _power_step(mat: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``P = orth(image)`` (Householder QR: orthonormal columns) and ``Q' = M^T P``; ``image = M Q``."""
    p, _ = torch.linalg.qr(image)
    return p, mat.T @ p


class PowerSGD(FramedCodec):
    """Rank-``r`` approximation of each matrix by one warm-started power iteration."""

    codec_id = CodecId.POWERSGD
    family = "powersgd"
    params_help = "r = rank 1..1024"
    description = "PowerSGD: rank-r, one power iteration, warm start in the UE state (r(n+m) floats)"
    stateful = True
    contractive = True
    under_ef = "as is (projection: delta >= q/m)"

    def __init__(self, rank: int) -> None:
        if not 1 <= rank <= 1024:
            raise ValueError(f"powersgd: rank must be 1..1024, got {rank}")
        self.rank = rank
        self.spec = f"powersgd:{rank}"

    @classmethod
    def from_args(cls, args: list[str]) -> PowerSGD:
        expect_args(cls.family, args, 1, 1, "the rank, e.g. powersgd:4")
        return cls(parse_int(args[0], "powersgd: rank", 1, 1024))

    def _params(self) -> bytes:
        return varint(self.rank)

    def _encode_body(
        self,
        w: Writer,
        flats: list[torch.Tensor],
        metas: list[TensorMeta],
        rng: torch.Generator,
        state: CodecState | None,
    ) -> None:
        for i, (x, meta) in enumerate(zip(flats, metas, strict=True)):
            layout = low_rank_shape(meta.shape, self.rank)
            if layout is None:
                w.f32(x)
                continue
            n, m, q = layout
            mat, e = normalize_rows(x.view(1, -1))  # extreme values into [0.5, 1): no overflow below
            mat = mat.view(n, m)
            key = f"q.{i}"
            warm = state.get(key) if state is not None else None
            if isinstance(warm, torch.Tensor) and warm.shape == (m, q) and warm.dtype == torch.float32:
                start = normalize_rows(warm.reshape(1, -1))[0].view(m, q)  # only its span matters
            else:
                start = torch.randn(m, q, generator=rng)
            p, q_new = _power_step(mat, mat @ start)
            if sum_squares(q_new) < q / m * sum_squares(mat):  # restart from the largest columns
                top = torch.sort(mat.square().sum(dim=0), descending=True, stable=True).indices[:q]
                p, q_new = _power_step(mat, mat[:, top])
            q_new = ldexp(q_new, e)
            w.f32(p)
            w.f32(q_new)
            if state is not None and bool(q_new.any()) and bool(torch.isfinite(q_new).all()):
                state[key] = q_new  # an all-zero Q would stall every later power iteration

    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        out = []
        for meta in metas:
            layout = low_rank_shape(meta.shape, self.rank)
            if layout is None:
                out.append(r.f32(meta.numel, "values"))
                continue
            n, m, q = layout
            r.require(4 * q * (n + m), f"rank-{q} factors of a {n}x{m} matrix")
            p = r.f32(n * q, "P").view(n, q)
            q_new = r.f32(m * q, "Q").view(m, q)
            out.append((p @ q_new.T).view(-1))
        return out
