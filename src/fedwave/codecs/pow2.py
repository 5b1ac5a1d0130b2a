"""Exact power-of-two scaling, so codec arithmetic never overflows or loses precision to denormals.

A codec that sums squares or divides by a norm in float32 overflows for large finite inputs (``1e20``
squared is above float32's 3.4e38) and loses precision on denormal ones (below 1.2e-38). Multiplying a
float by ``2**k`` only changes its exponent, so it is exact while the result stays in the normal range.
The codecs therefore

1. scale each tensor or block by ``2**-e`` where ``e`` is the exponent of its largest magnitude
   (``max|x| = m 2**e`` with ``m`` in ``[0.5, 1)``), so every value lies in ``[-1, 1]``;
2. run their float32 arithmetic on the scaled values (sums of ``d`` squares are at most ``d``);
3. scale the parameter they send (norm, range, scale per block) back by ``2**e``;

and the decoder splits a received parameter the same way, decodes with the scaled value, and applies
the exponent last. Only a result that is itself beyond float32's range overflows (to ``inf``), and only
a result that is itself denormal is rounded.

Magnitudes whose exponent is in :data:`SAFE_EXPONENTS` (``2**-61`` to ``2**40``, i.e. 4e-19 to 1e12,
where update values normally are) need no scaling: ``e`` is 0 there and the scaling is skipped. Both
paths give the same bits, because float arithmetic commutes exactly with power-of-two scaling as long as
no result leaves the normal range; the bounds keep every intermediate of the codecs (a sum of ``2**28``
squares, a Hadamard sum of ``2**16`` values, a level spacing) inside it.

Reductions that need no per-coordinate result (sums of squares for a variance) are done in float64,
whose range holds the square of any float32 value summed over :data:`~fedwave.codecs.header.MAX_ELEMENTS`
values (at most ``2**28 * 3.4e38**2``, about ``3e85``) and the square of the smallest denormal (``2e-90``).
"""

from __future__ import annotations

import torch

#: frexp exponents of finite non-zero float32 values lie in [-148, 128]; halves lie in [-74, 64].
_BIAS = 127
#: frexp exponents of magnitudes the codecs handle without scaling (``2**-61 <= |x| < 2**40``).
SAFE_EXPONENTS = (-60, 40)


def exponent(amax: torch.Tensor) -> torch.Tensor:
    """The scaling exponent ``e`` (int32) of magnitudes ``amax``: ``amax = m * 2**e`` with ``0.5 <= m <
    1``, or 0 where ``amax`` is 0, not finite, or in the safe range (no scaling needed)."""
    _, e = torch.frexp(amax.to(torch.float32))
    low, high = SAFE_EXPONENTS
    keep = torch.isfinite(amax) & (amax != 0) & ((e < low) | (e > high))
    return torch.where(keep, e, torch.zeros_like(e))


def split(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scaled, e)`` with ``values == ldexp(scaled, e)`` and each ``|scaled|`` in [0.5, 1) or in the safe
    range (a decoder's view of a received norm, range or scale)."""
    e = exponent(values.abs())
    return ldexp(values, -e), e


def _pow2(e: torch.Tensor) -> torch.Tensor:
    """Float32 ``2**e`` for integers ``-126 <= e <= 127``, built from the exponent bits (exact)."""
    return ((e.to(torch.int32) + _BIAS) << 23).view(torch.float32)


def ldexp(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``x * 2**e`` in float32 for integers ``-252 <= e <= 254`` (broadcast against ``x``).

    Two multiplications by representable powers of two (``2**(e//2)`` and the rest): each is exact while
    its result stays in the normal range, so a result in that range is exact, a result beyond it
    overflows to ``inf``, and a denormal result is rounded. Nothing is computed when ``e`` is all 0.
    """
    if not bool(e.any()):
        return x.to(torch.float32)
    e = e.to(torch.int32)
    half = torch.div(e, 2, rounding_mode="floor")
    return x.to(torch.float32) * _pow2(half) * _pow2(e - half)


def normalize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each row of a 2-D float32 tensor by a power of two so its largest magnitude is in [0.5, 1)
    (rows already in the safe range, rows of zeros and rows holding NaN or inf are left as they are).

    Returns:
        ``(scaled, e)`` with ``x == ldexp(scaled, e[:, None])`` exactly.
    """
    e = exponent(x.abs().amax(dim=1)) if x.shape[1] else torch.zeros(x.shape[0], dtype=torch.int32)
    return ldexp(x, -e.unsqueeze(1)), e


def sum_squares(x: torch.Tensor) -> float:
    """``sum(x_i**2)`` accumulated in float64 (no overflow or underflow for float32 inputs)."""
    return float(torch.linalg.vector_norm(x, dtype=torch.float64)) ** 2
