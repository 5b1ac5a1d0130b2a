"""Vectorized bit packing: fixed-width codes, base-k digits and variable-length (unary + suffix) codes.

Bit order is little-endian throughout: for widths ``w <= 8`` code ``i`` occupies stream bits
``i*w .. i*w + w - 1``, low bit first, and stream bit ``j`` is bit ``j % 8`` of byte ``j // 8``. Wider
codes are stored as their low 8 bits (one byte per code) followed by their high ``w - 8`` bits packed
the same way. ``n`` codes of width ``w`` take exactly ``ceil(n * w / 8)`` bytes; unused high bits of the
last byte are zero, and the unpackers reject a payload where they are not.

Digits in base ``k`` (``k`` not a power of two) are packed ``g`` to a word, ``sum_j digit_j k**j``, and
the words as fixed-width codes of ``w = bits(k**g - 1)`` bits; ``g`` is chosen (with ``k**g <= 2**56``) to
make ``w / g`` smallest, which is within 2.4% of the entropy bound ``log2(k)`` for every ``k`` up to
``2**17`` (``k = 3``: 29 digits in 46 bits, 1.586 bits per digit).

Every function works on whole tensors; loops run only over bit positions (at most 8 or ``w``) or digit
positions (at most ``g``).
"""

from __future__ import annotations

import functools

import torch

from fedwave.errors import PayloadError

_TRIT_POW = (1, 3, 9, 27, 81)


def packed_size(count: int, width: int) -> int:
    """Bytes taken by ``count`` codes of ``width`` bits: ``ceil(count * width / 8)``."""
    return (count * width + 7) // 8


def pack_codes(codes: torch.Tensor, width: int) -> bytes:
    """Pack non-negative integer codes, each below ``2**width``, into ``ceil(n*width/8)`` bytes.

    Args:
        codes: 1-D integer tensor (any integer dtype or bool).
        width: bits per code, 1..56.
    """
    n = codes.numel()
    if n == 0:
        return b""
    if width == 8:
        return codes.to(torch.uint8).numpy().tobytes()
    groups = (n + 7) // 8
    if 8 % width == 0:  # 1, 2 or 4 bits: whole codes per byte, computed in uint8
        per = 8 // width
        padded = torch.zeros(groups * 8, dtype=torch.uint8)
        padded[:n] = codes.to(torch.uint8)
        g = padded.view(-1, per)
        acc = g[:, 0].clone()
        for j in range(1, per):
            acc |= g[:, j] << (width * j)
        return acc[: packed_size(n, width)].numpy().tobytes()
    if width < 8:  # 3, 5, 6, 7 bits: 8 codes make `width` bytes, assembled in an int64
        padded64 = torch.zeros(groups * 8, dtype=torch.int64)
        padded64[:n] = codes.to(torch.int64)
        g64 = padded64.view(groups, 8)
        acc64 = g64[:, 0].clone()
        for j in range(1, 8):
            acc64 |= g64[:, j] << (width * j)
        out = torch.empty(groups, width, dtype=torch.uint8)
        for k in range(width):
            out[:, k] = ((acc64 >> (8 * k)) & 0xFF).to(torch.uint8)
        return out.view(-1)[: packed_size(n, width)].numpy().tobytes()
    planes, rest = divmod(width, 8)  # `planes` byte planes (low bits first), then the `rest` high bits
    wide = codes.to(torch.int64)
    shifts = torch.arange(0, 8 * planes, 8, dtype=torch.int64).unsqueeze(1)
    low = ((wide.unsqueeze(0) >> shifts) & 0xFF).to(torch.uint8).numpy().tobytes()
    return low + (pack_codes(wide >> (8 * planes), rest) if rest else b"")


def unpack_codes(data: torch.Tensor, count: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: ``count`` codes (int64) from ``packed_size(count, width)`` bytes.

    Raises:
        PayloadError: wrong number of bytes, or non-zero padding bits.
    """
    need = packed_size(count, width)
    if data.numel() != need:
        raise PayloadError(f"{count} codes of {width} bits need {need} bytes, got {data.numel()}")
    if count == 0:
        return torch.zeros(0, dtype=torch.int64)
    data = data.to(torch.uint8)
    if width == 8:
        return data.to(torch.int64)
    groups = (count + 7) // 8
    if 8 % width == 0:
        per = 8 // width
        padded = torch.zeros(groups * width, dtype=torch.uint8)
        padded[:need] = data
        mask = (1 << width) - 1
        codes = torch.stack([(padded >> (width * j)) & mask for j in range(per)], dim=1).view(-1)
    elif width < 8:
        padded = torch.zeros(groups * width, dtype=torch.uint8)
        padded[:need] = data
        g = padded.view(groups, width).to(torch.int64)
        acc = g[:, 0].clone()
        for k in range(1, width):
            acc |= g[:, k] << (8 * k)
        mask = (1 << width) - 1
        codes = torch.stack([(acc >> (width * j)) & mask for j in range(8)], dim=1).view(-1)
    else:
        planes, rest = divmod(width, 8)
        shifts = torch.arange(0, 8 * planes, 8, dtype=torch.int64).unsqueeze(1)
        low = (data[: planes * count].view(planes, count).to(torch.int64) << shifts).sum(dim=0)
        if not rest:
            return low
        return low | (unpack_codes(data[planes * count :], count, rest) << (8 * planes))
    if bool(codes[count:].any()):
        raise PayloadError("non-zero padding bits after the last code")
    return codes[:count].to(torch.int64)


def pack_bits(bits: torch.Tensor) -> bytes:
    """Pack a 0/1 (or bool) tensor into ``ceil(n/8)`` bytes."""
    return pack_codes(bits, 1)


def unpack_stream(data: torch.Tensor) -> torch.Tensor:
    """All ``8 * len(data)`` bits of a byte tensor, as a uint8 0/1 tensor (no padding check)."""
    data = data.to(torch.uint8)
    return torch.stack([(data >> j) & 1 for j in range(8)], dim=1).view(-1)


def pack_trits(trits: torch.Tensor) -> bytes:
    """Pack ternary digits (0, 1, 2) five to a byte (base 3, value <= 242): ``ceil(n/5)`` bytes."""
    n = trits.numel()
    groups = (n + 4) // 5
    padded = torch.zeros(groups * 5, dtype=torch.uint8)
    padded[:n] = trits.to(torch.uint8)
    g = padded.view(groups, 5)
    acc = g[:, 0].clone()
    for j in range(1, 5):
        acc += g[:, j] * _TRIT_POW[j]
    return acc.numpy().tobytes()


def unpack_trits(data: torch.Tensor, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_trits` (int64 digits).

    Raises:
        PayloadError: wrong number of bytes, a byte above 242, or non-zero padding digits.
    """
    need = (count + 4) // 5
    if data.numel() != need:
        raise PayloadError(f"{count} ternary digits need {need} bytes, got {data.numel()}")
    if need and int(data.max()) > 242:
        raise PayloadError("byte above 242 in packed ternary digits")
    rest = data.to(torch.int64)
    digits = []
    for _ in range(5):
        digits.append(rest % 3)
        rest = rest // 3
    out = torch.stack(digits, dim=1).view(-1)
    if bool(out[count:].any()):
        raise PayloadError("non-zero padding digits after the last ternary digit")
    return out[:count]


MAX_WORD_BITS = 56


@functools.lru_cache(maxsize=64)
def digit_group(base: int) -> tuple[int, int]:
    """``(g, w)``: base-``base`` digits per word and bits per word, ``w / g`` smallest with ``base**g <=
    2**56`` (the first such ``g`` on ties)."""
    if base < 2:
        raise ValueError(f"digit base must be at least 2, got {base}")
    best = (1, (base - 1).bit_length())
    g = 2
    while base**g <= 1 << MAX_WORD_BITS:
        w = (base**g - 1).bit_length()
        if w * best[0] < best[1] * g:
            best = (g, w)
        g += 1
    return best


def digits_size(count: int, base: int) -> int:
    """Bytes taken by ``count`` base-``base`` digits: the full words, then the last partial word."""
    g, w = digit_group(base)
    full, rest = divmod(count, g)
    return packed_size(full, w) + (packed_size(1, (base**rest - 1).bit_length()) if rest else 0)


def pack_digits(digits: torch.Tensor, base: int) -> bytes:
    """Pack integers ``0 <= digit < base`` into :func:`digits_size` bytes.

    The first ``g * (n // g)`` digits form words ``sum_j digit[g i + j] * base**j`` of ``w`` bits each,
    packed with :func:`pack_codes`; the ``r = n % g`` last digits form one word of
    ``bits(base**r - 1)`` bits, packed on its own (starting on a byte boundary).
    """
    g, w = digit_group(base)
    n = digits.numel()
    full, rest = divmod(n, g)
    powers = torch.tensor([base**j for j in range(g)], dtype=torch.int64)
    d64 = digits.to(torch.int64)
    out = pack_codes((d64[: full * g].view(full, g) * powers).sum(dim=1), w)
    if rest:
        last = (d64[full * g :] * powers[:rest]).sum().view(1)
        out += pack_codes(last, (base**rest - 1).bit_length())
    return out


def _split_words(words: torch.Tensor, base: int, g: int) -> torch.Tensor:
    if words.numel() and int(words.max()) >= base**g:
        raise PayloadError(f"packed word above {base}**{g} - 1")
    powers = torch.tensor([base**j for j in range(g)], dtype=torch.int64)
    return ((words.unsqueeze(1) // powers) % base).view(-1)


def unpack_digits(data: torch.Tensor, count: int, base: int) -> torch.Tensor:
    """Inverse of :func:`pack_digits`: ``count`` digits (int64).

    Raises:
        PayloadError: wrong number of bytes, a word of ``base**g`` or more, or non-zero padding bits.
    """
    g, w = digit_group(base)
    need = digits_size(count, base)
    if data.numel() != need:
        raise PayloadError(f"{count} base-{base} digits need {need} bytes, got {data.numel()}")
    full, rest = divmod(count, g)
    head = packed_size(full, w)
    out = _split_words(unpack_codes(data[:head], full, w), base, g)
    if rest:
        last = unpack_codes(data[head:], 1, (base**rest - 1).bit_length())
        out = torch.cat([out, _split_words(last, base, rest)])
    return out


def write_split_code(unary: torch.Tensor, suffix: torch.Tensor, widths: torch.Tensor | int) -> torch.Tensor:
    """Bits of a two-part variable-length code, all unary parts first, then all suffixes.

    Symbol ``i`` is written as ``unary[i]`` zeros and a one (in the first part) and as the low
    ``widths[i]`` bits of ``suffix[i]`` (in the second part). With ``unary = floor(log2 v)``,
    ``suffix = v - 2**unary`` and ``widths = unary`` this is Elias-gamma coding of ``v >= 1``
    (``2*floor(log2 v) + 1`` bits); with a constant width ``k`` it is Rice coding. Keeping the unary
    parts together lets the decoder find every symbol boundary at once (the positions of the ones).

    Returns:
        uint8 0/1 tensor of ``sum(unary + 1) + sum(widths)`` bits.
    """
    n = unary.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.uint8)
    unary = unary.to(torch.int64)
    suffix = suffix.to(torch.int64)
    ends = torch.cumsum(unary + 1, dim=0)
    ubits = torch.zeros(int(ends[-1]), dtype=torch.uint8)
    ubits[ends - 1] = 1
    if isinstance(widths, int):
        if widths == 0:
            return ubits
        shifts = torch.arange(widths, dtype=torch.int64)
        sbits = ((suffix.unsqueeze(1) >> shifts) & 1).to(torch.uint8).view(-1)
        return torch.cat([ubits, sbits])
    widths = widths.to(torch.int64)
    return torch.cat([ubits, _suffix_bits(suffix, widths)])


def _suffix_bits(suffix: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """The low ``widths[i]`` bits of every ``suffix[i]``, concatenated (symbols of width 0 skipped)."""
    wide = torch.nonzero(widths).view(-1)
    widths, suffix = widths[wide], suffix[wide]
    total = int(widths.sum())
    sym = torch.repeat_interleave(torch.arange(wide.numel()), widths, output_size=total)
    starts = torch.cumsum(widths, dim=0) - widths
    pos = torch.arange(total, dtype=torch.int64) - starts[sym]
    return ((suffix[sym] >> pos) & 1).to(torch.uint8)


def read_split_code(
    bits: torch.Tensor, count: int, width: int | None, max_unary: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Inverse of :func:`write_split_code` for ``count`` symbols read from the start of ``bits``.

    Args:
        bits: uint8 0/1 tensor (see :func:`unpack_stream`).
        count: number of symbols.
        width: constant suffix width (Rice), or ``None`` for ``width = unary`` (Elias gamma).
        max_unary: largest valid unary part; a larger one is a payload error.

    Returns:
        ``(unary, suffix, bits_used)``.
    """
    empty = torch.zeros(0, dtype=torch.int64)
    if count == 0:
        return empty, empty, 0
    if count > bits.numel():
        raise PayloadError(f"{count} symbols cannot fit in {bits.numel()} bits")
    ones = torch.nonzero(bits).view(-1)
    if ones.numel() < count:
        raise PayloadError(f"bit stream holds {ones.numel()} code words, {count} expected")
    ones = ones[:count]
    unary = torch.diff(ones, prepend=torch.tensor([-1])) - 1
    if int(unary.max()) > max_unary:
        raise PayloadError(f"code word with a unary part above {max_unary}")
    used = int(ones[-1]) + 1
    if width is not None:
        if used + count * width > bits.numel():
            raise PayloadError("bit stream truncated in the suffixes")
        if width == 0:
            return unary, torch.zeros(count, dtype=torch.int64), used
        block = bits[used : used + count * width].view(count, width).to(torch.int64)
        suffix = (block << torch.arange(width, dtype=torch.int64)).sum(dim=1)
        return unary, suffix, used + count * width
    total = int(unary.sum())
    if used + total > bits.numel():
        raise PayloadError("bit stream truncated in the suffixes")
    wide = torch.nonzero(unary).view(-1)
    widths = unary[wide]
    sym = torch.repeat_interleave(torch.arange(wide.numel()), widths, output_size=total)
    starts = torch.cumsum(widths, dim=0) - widths
    pos = torch.arange(total, dtype=torch.int64) - starts[sym]
    vals = bits[used : used + total].to(torch.int64) << pos
    suffix = torch.zeros(count, dtype=torch.int64)
    suffix[wide] = torch.zeros(wide.numel(), dtype=torch.int64).index_add_(0, sym, vals)
    return unary, suffix, used + total
