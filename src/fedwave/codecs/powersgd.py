"""``powersgd:r``: rank-``r`` PowerSGD (Vogels et al., 2019), one power iteration with warm start.

A tensor with two or more dimensions is read as the matrix ``M`` of shape ``(shape[0], rest)``
(``n x m``). With ``q = min(r, n, m)`` and ``Q`` (``m x q``) from the UE's state (random normal the first
time): ``P = orth(M Q)``, ``Q' = M^T P``; the payload carries ``P`` and ``Q'`` and the decoder returns
``P Q'^T``. ``Q'`` is kept in the state as the next call's warm start, so repeated calls refine the
subspace. Biased; wrap it in ``ef(...)`` to recover what it drops.

Tensors with fewer than two dimensions, and matrices where ``q (n + m) >= n m`` (no saving), are sent
as raw float32.

Body, per tensor: ``P`` then ``Q'`` (float32, row-major), or the raw values. Size: ``32 q (n + m)``
bits per low-rank matrix, ``32 d`` otherwise. State keys: ``"q.<tensor index>"``.
"""

from __future__ import annotations

import torch

from fedwave.codecs.base import CodecState, FramedCodec, expect_args, parse_int
from fedwave.codecs.header import CodecId, Reader, TensorMeta, Writer, varint


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


class PowerSGD(FramedCodec):
    """Rank-``r`` approximation of each matrix by one warm-started power iteration."""

    codec_id = CodecId.POWERSGD
    family = "powersgd"
    params_help = "r = rank 1..1024"
    description = "PowerSGD: rank-r, one power iteration, warm start in the UE state (r(n+m) floats)"
    stateful = True

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
            mat = x.view(n, m)
            key = f"q.{i}"
            warm = state.get(key) if state is not None else None
            if isinstance(warm, torch.Tensor) and warm.shape == (m, q) and warm.dtype == torch.float32:
                start = warm
            else:
                start = torch.randn(m, q, generator=rng)
            p, _ = torch.linalg.qr(mat @ start)
            q_new = mat.T @ p
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
