"""The codec interface, the payload framing every codec shares, and spec-argument parsing.

A :class:`Codec` turns the list of tensors a UE shares into ``bytes`` (the message whose length the
channel transmits) and back. Codecs hold no per-UE data: stateful codecs (error feedback, PowerSGD)
read and write a :data:`CodecState` that the caller keeps per UE, so one codec object serves many UEs
and both link directions.

Decoding against the expected layout: the receiver knows the shapes it should get (the BS knows the
global model), so it calls ``codec.decode(payload, expected=metas_of(model_tensors))``. A payload whose
tensor list differs in count, shape or dtype is refused with :class:`~fedwave.errors.PayloadError` while
its header is read, before anything is allocated in proportion to the sizes it claims; every decoder
then allocates at most a small multiple of the expected size plus the payload length. Without
``expected`` a payload may claim up to :data:`~fedwave.codecs.header.MAX_ELEMENTS` elements, and codecs
whose decoded size is not bounded by the payload length (``randk``, ``topk``, ``powersgd``,
``qsgd:s:elias``) will allocate that much.

Error feedback: ``ef(<codec>)`` encodes with :meth:`Codec.contraction`, a form of the codec whose
payloads the codec itself decodes and that is a contraction, ``E||C(x) - x||^2 <= (1 - delta) ||x||^2``
with ``delta > 0``; without that condition the residual grows without bound. Each codec's docstring
derives its ``delta``.
"""

from __future__ import annotations

import copy
import functools
import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import torch

from fedwave.codecs.header import (
    DTYPE_CODES,
    MAX_ELEMENTS,
    MAX_NDIM,
    CodecId,
    Reader,
    TensorMeta,
    Writer,
    frame,
    unframe,
)
from fedwave.errors import ConfigError, PayloadError

#: Per-UE mutable codec state owned by the caller. Holds only tensors, ints and floats (flat keys),
#: so it can be checkpointed with ``torch.save``.
CodecState = dict[str, Any]


class Codec(ABC):
    """Encode a list of tensors to bytes and decode them back.

    Attributes:
        spec: canonical spec string, e.g. ``"uniform:8"`` or ``"ef(topk:0.01)"``.
        unbiased: ``E[decode(encode(x))] == x`` over the generator's randomness.
        exact: lossless (for float32, float16 and bfloat16 inputs).
        stateful: uses a :data:`CodecState` between calls (``ef``, ``powersgd``).
        under_ef: what ``ef(<this codec>)`` encodes with, in a few words (``fedwave codecs`` shows it).
    """

    spec: str
    unbiased: bool = False
    exact: bool = False
    stateful: bool = False
    under_ef: ClassVar[str] = "refused"

    @abstractmethod
    def encode(
        self,
        tensors: Sequence[torch.Tensor],
        *,
        rng: torch.Generator,
        state: CodecState | None = None,
    ) -> bytes:
        """Encode ``tensors`` (floating point, on the CPU) to a self-describing payload.

        Args:
            tensors: the update; float32 is the main case, float16/bfloat16/float64 are accepted.
            rng: the only source of randomness; same inputs and generator state give the same bytes.
            state: per-UE state of a stateful codec, updated in place (``None``: start afresh and
                keep nothing). A codec never keeps a non-finite value in it.

        Returns:
            The payload; ``len(payload)`` bytes (header and checksum included) is what is sent.
        """

    @abstractmethod
    def decode(self, payload: bytes, *, expected: Sequence[TensorMeta] | None = None) -> list[torch.Tensor]:
        """Decode a payload to tensors of the encoded shapes and dtypes.

        Args:
            payload: bytes from the air.
            expected: the tensors the receiver expects, in order (see
                :func:`~fedwave.codecs.header.metas_of`); a payload with another count, shape or dtype is
                refused before any allocation in proportion to what it claims. ``None`` accepts any
                layout of up to :data:`~fedwave.codecs.header.MAX_ELEMENTS` elements.

        Raises:
            PayloadError: the bytes were not produced by this codec's ``encode`` (or not for the
                expected tensors). No other exception escapes.
        """

    def contraction(self) -> Codec:
        """The form of this codec that ``ef(...)`` encodes with.

        Its payloads are decoded by this codec's :meth:`decode`, and it is a contraction,
        ``E||C(x) - x||^2 <= (1 - delta) ||x||^2`` with ``delta > 0`` (the condition under which the
        error-feedback residual stays bounded: ``E||e||^2 <= 4 (1 - delta) / delta^2 max||x||^2``).

        Raises:
            ConfigError: this codec cannot be wrapped in ``ef(...)``.
        """
        raise ConfigError(f"codec {self.spec!r} cannot be wrapped in ef(...)")

    def __repr__(self) -> str:
        return f"<codec {self.spec}>"


def prepare(tensors: Sequence[torch.Tensor]) -> tuple[list[TensorMeta], list[torch.Tensor]]:
    """Check the tensors to encode; return their metadata and flat float32 CPU views.

    Raises:
        TypeError: not a sequence of tensors, or not float32/float16/bfloat16/float64.
        ValueError: more than 31 dimensions, more than ``MAX_ELEMENTS`` elements in all, or a shape
            whose non-zero dimensions multiply to more than ``MAX_ELEMENTS`` (a payload could not
            carry it).
    """
    if isinstance(tensors, torch.Tensor):
        raise TypeError("codecs encode a sequence of tensors; wrap a single tensor in a list")
    tensors = list(tensors)  # read once (an iterator would be empty by the second pass)
    layout = []
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            _checked_layout(tuple(layout))  # a fault of an earlier tensor is the one reported
            raise TypeError(f"codecs encode torch tensors, got {type(t).__name__}")
        layout.append((t.shape, t.dtype))
    metas = list(_checked_layout(tuple(layout)))
    flats = [
        t.detach().view(-1)  # what the general line below returns, in one call
        if t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
        else t.detach().reshape(-1).to(device="cpu", dtype=torch.float32).contiguous()
        for t in tensors
    ]
    return metas, flats


@functools.lru_cache(maxsize=64)
def _checked_layout(layout: tuple[tuple[torch.Size, torch.dtype], ...]) -> tuple[TensorMeta, ...]:
    """The metadata of tensors of these shapes and dtypes, checked as :func:`prepare` says (remembered
    for the few layouts a run encodes: a model's update, its buffers)."""
    metas = []
    total = 0
    for shape, dtype in layout:
        if dtype not in DTYPE_CODES:
            raise TypeError(f"codecs encode float32/float16/bfloat16/float64 tensors, got {dtype}")
        if len(shape) > MAX_NDIM:
            raise ValueError(f"tensor with {len(shape)} dimensions (at most {MAX_NDIM})")
        meta = TensorMeta(tuple(shape), dtype)
        numel = meta.numel
        if (numel == 0 or numel > MAX_ELEMENTS) and meta.span > MAX_ELEMENTS:
            raise ValueError(f"tensor of shape {meta.shape} spans more than {MAX_ELEMENTS} elements")
        total += numel
        if total > MAX_ELEMENTS:
            raise ValueError(f"update of more than {MAX_ELEMENTS} elements")
        metas.append(meta)
    return tuple(metas)


class FramedCodec(Codec):
    """A codec whose payload is the frame of :mod:`fedwave.codecs.header` around its own body.

    Subclasses set ``codec_id`` and implement :meth:`_params`, :meth:`_encode_body` and
    :meth:`_decode_body`; this class validates inputs, writes and checks the header and checksum, and
    turns any failure while decoding into :class:`~fedwave.errors.PayloadError`.
    """

    codec_id: ClassVar[CodecId]
    #: Family name in the registry (``"uniform"``), its parameters and a one-line description.
    family: ClassVar[str]
    params_help: ClassVar[str] = "-"
    description: ClassVar[str] = ""
    #: The codec is a contraction as it is (``ef`` encodes with it unchanged).
    contractive: ClassVar[bool] = False
    #: This object is the contraction form of an unbiased codec (see :meth:`contraction`).
    ef_form: bool = False

    @classmethod
    @abstractmethod
    def from_args(cls, args: list[str]) -> FramedCodec:
        """Build the codec from the ``:``-separated arguments of its spec string.

        Raises:
            ConfigError: wrong number or values of arguments.
        """

    def _params(self) -> bytes:
        """The codec parameters written in the header (checked on decode)."""
        return b""

    def contraction(self) -> Codec:
        """See :meth:`Codec.contraction`: ``self`` if contractive, else a copy with ``ef_form`` set.

        An unbiased codec with variance ``E||C(x) - x||^2 = omega ||x||^2`` (so ``E||C(x)||^2 =
        (1 + omega) ||x||^2``) becomes a contraction when its output is divided by ``1 + omega``:
        ``E||C(x)/(1+omega) - x||^2 = ||x||^2 (1/(1+omega) - 2/(1+omega) + 1) = omega/(1+omega) ||x||^2``,
        i.e. ``delta = 1/(1 + omega)`` (the scaled class of Beznosikov et al., 2020). ``omega`` may be an
        upper bound, or the exact variance of this very input, which the encoder knows. The codecs here
        are positively homogeneous (``C(a x)`` is distributed as ``a C(x)`` for ``a > 0``), so the
        ``ef_form`` encoder only scales the parameter it sends (norm, range, per-block scale); the payload
        layout and the decoder are unchanged.
        """
        if self.contractive:
            return self
        if self.unbiased:
            form = copy.copy(self)
            form.ef_form = True
            form.unbiased = False
            return form
        return super().contraction()

    @abstractmethod
    def _encode_body(
        self,
        w: Writer,
        flats: list[torch.Tensor],
        metas: list[TensorMeta],
        rng: torch.Generator,
        state: CodecState | None,
    ) -> None:
        """Write the body for the flat float32 tensors ``flats``."""

    @abstractmethod
    def _decode_body(self, r: Reader, metas: list[TensorMeta]) -> list[torch.Tensor]:
        """Read the body; return one flat float32 tensor per entry of ``metas``."""

    def encode(
        self,
        tensors: Sequence[torch.Tensor],
        *,
        rng: torch.Generator,
        state: CodecState | None = None,
    ) -> bytes:
        """See :meth:`Codec.encode`."""
        if not isinstance(rng, torch.Generator):
            raise TypeError(f"rng must be a torch.Generator, got {type(rng).__name__}")
        metas, flats = prepare(tensors)
        w = Writer()
        with torch.no_grad():
            self._encode_body(w, flats, metas, rng, state)
        return frame(self.codec_id, self._params(), metas, w.parts)

    def decode(self, payload: bytes, *, expected: Sequence[TensorMeta] | None = None) -> list[torch.Tensor]:
        """See :meth:`Codec.decode`."""
        metas, r = unframe(payload, self.codec_id, self._params(), self.spec, expected)
        try:
            with torch.no_grad():
                flats = self._decode_body(r, metas)
                r.expect_end()
                return [
                    f.reshape(m.shape) if m.dtype == torch.float32 else f.reshape(m.shape).to(m.dtype)
                    for f, m in zip(flats, metas, strict=True)
                ]
        except PayloadError:
            raise
        except (
            IndexError,
            ValueError,
            TypeError,
            RuntimeError,
            ArithmeticError,
            MemoryError,
            struct.error,
        ) as exc:
            raise PayloadError(f"malformed {self.spec} payload: {type(exc).__name__}: {exc}") from exc


# --- spec arguments -------------------------------------------------------------------------------


class ParameterlessCodec(FramedCodec):
    """A framed codec without spec arguments: its spec string is its family name."""

    def __init__(self) -> None:
        self.spec = self.family

    @classmethod
    def from_args(cls, args: list[str]) -> Self:
        expect_args(cls.family, args, 0, 0, "no arguments")
        return cls()


def expect_args(family: str, args: list[str], low: int, high: int, usage: str) -> None:
    """Raise :class:`ConfigError` unless ``low <= len(args) <= high``."""
    if not low <= len(args) <= high:
        raise ConfigError(f"codec {family!r} takes {usage}; got {':'.join([family, *args])!r}")


def parse_int(text: str, what: str, low: int, high: int) -> int:
    """Parse an integer argument in ``[low, high]`` or raise :class:`ConfigError`."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{what} must be an integer in {low}..{high}, got {text!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{what} must be an integer in {low}..{high}, got {value}")
    return value


def parse_fraction(text: str, what: str) -> float:
    """Parse a fraction in ``(0, 1]`` or raise :class:`ConfigError`."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what} must be a number in (0, 1], got {text!r}") from None
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ConfigError(f"{what} must be a number in (0, 1], got {text!r}")
    return value


def kept_count(fraction: float, numel: int) -> int:
    """Entries kept by a sparsifier keeping ``fraction`` of ``numel``: ``ceil(fraction*numel)``, >= 1."""
    if numel == 0:
        return 0
    # the small slack keeps float error (0.1 * 30 = 3.0000000000000004) from adding an entry
    return min(numel, max(1, math.ceil(fraction * numel - 1e-9)))


def draw_seed(rng: torch.Generator) -> int:
    """A 63-bit seed for shared randomness, drawn from ``rng``."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=rng, dtype=torch.int64).item())


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (shared randomness regenerated by the decoder)."""
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g
