"""The codec contract: the rules every :class:`~fedwave.codecs.Codec` meets, runnable on your own codec.

Rules (each a function of the codec, failing with a sentence that says what went wrong):

* ``round_trip``: ``encode`` returns ``bytes`` and leaves its input unchanged; ``decode`` gives back
  tensors of the encoded shapes and dtypes, all finite; a codec claiming ``exact`` returns them equal.
* ``empty_update`` and ``zero_in_zero_out``: ``[]`` gives ``[]``; zeros give zeros (twice, with state).
* ``deterministic``: the same generator seed (and state) gives the same bytes; another instance of the
  codec decodes them to the same tensors.
* ``expected_layout``: ``decode(payload, expected=metas_of(x))`` decodes; a payload for another layout
  is refused with :class:`~fedwave.errors.PayloadError`.
* ``malformed_payloads``: every truncation, trailing bytes and non-bytes raise ``PayloadError``; random
  bytes raise ``PayloadError`` or decode, never another exception (the BS treats the update as lost).
* ``error_bound``: with ``nmse_bound``, ``E||C(x) - x||^2 / ||x||^2 <= nmse_bound`` on Gaussian updates.
* ``unbiased``: a codec claiming ``unbiased`` has ``E[C(x)] = x``: the mean error of ``samples`` decodes,
  projected on ``x`` and on random directions, is within 5 standard errors of 0.
* ``state``: a stateful codec keeps only tensors, ints and floats in its state, all finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from fedwave.codecs.base import Codec, CodecState
from fedwave.codecs.header import metas_of
from fedwave.errors import PayloadError
from fedwave.testing.common import fail, run_rules

CodecSource = Codec | str | Callable[[], Codec]


def sample_update(seed: int = 0) -> list[torch.Tensor]:
    """A small model-like update: a conv weight, a bias, a float16 matrix, an empty tensor, a tensor with
    a zero-size dimension, a float64 vector, a scalar and a bfloat16 matrix."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(8, 3, 3, 3, generator=g) * 0.3,
        torch.randn(8, generator=g),
        (torch.randn(10, 24, generator=g) * 2).to(torch.float16),
        torch.zeros(0),
        torch.zeros(2, 0, 3),
        torch.randn(5, generator=g, dtype=torch.float64),
        torch.tensor(1.5),
        (torch.randn(6, 7, generator=g) * 0.01).to(torch.bfloat16),
    ]


def make_codec(source: CodecSource) -> Codec:
    """A fresh codec from a codec, a spec string (``"uniform:8"``, ``"mypkg.mod:MyCodec"``) or a factory."""
    from fedwave.codecs import get_codec

    if isinstance(source, str):
        return get_codec(source)
    if isinstance(source, Codec):
        return source
    codec = source()
    if not isinstance(codec, Codec):
        fail(f"the factory returned a {type(codec).__name__}, not a fedwave.codecs.Codec")
    return codec


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for t in tensors]) if tensors else torch.zeros(0)


def check_round_trip(codec: Codec) -> None:
    """See the module docstring."""
    update = sample_update()
    before = [t.clone() for t in update]
    payload = codec.encode(update, rng=_gen(1), state={})
    if not isinstance(payload, bytes):
        fail(f"encode returned {type(payload).__name__}, not bytes")
    if not all(torch.equal(a, b) for a, b in zip(before, update)):
        fail("encode modified the tensors it was given")
    out = codec.decode(payload)
    if [tuple(o.shape) for o in out] != [tuple(t.shape) for t in update]:
        got, want = [tuple(o.shape) for o in out], [tuple(t.shape) for t in update]
        fail(f"decode gave shapes {got}, encoded {want}")
    if [o.dtype for o in out] != [t.dtype for t in update]:
        fail(f"decode gave dtypes {[o.dtype for o in out]}, encoded {[t.dtype for t in update]}")
    if not all(bool(torch.isfinite(o).all()) for o in out):
        fail("decode gave non-finite values for a finite update")
    if codec.exact:
        for i, (o, t) in enumerate(zip(out, update)):
            if t.dtype != torch.float64 and not torch.equal(o, t):
                err = float((o.double() - t.double()).abs().max())
                fail(f"the codec claims exact but tensor {i} changed (max error {err:.3g})")


def check_empty_update(codec: Codec) -> None:
    """See the module docstring."""
    out = codec.decode(codec.encode([], rng=_gen(0), state={}))
    if out != []:
        fail(f"an empty update decoded to {len(out)} tensor(s), not []")


def check_zero_in_zero_out(codec: Codec) -> None:
    """See the module docstring."""
    zeros = [torch.zeros(6, 5), torch.zeros(7), torch.zeros(3, 4, 2)]
    state: CodecState = {}
    for call in range(2):
        out = codec.decode(codec.encode(zeros, rng=_gen(call), state=state))
        if not all(torch.equal(o, z) for o, z in zip(out, zeros)) or len(out) != len(zeros):
            worst = max(float(o.abs().max()) for o in out) if out else math.nan
            fail(f"zeros did not decode to zeros (call {call + 1}, largest |value| {worst})")


def check_deterministic(codec: Codec, again: Codec | None = None) -> None:
    """See the module docstring; ``again`` is a second instance of the codec (default: ``codec``)."""
    update = sample_update(3)
    runs = []
    for _ in range(2):
        rng, state = _gen(42), CodecState()
        runs.append([codec.encode(update, rng=rng, state=state) for _ in range(3)])
    if runs[0] != runs[1]:
        fail("the same generator seed gave different bytes: all randomness must come from rng")
    other = again if again is not None else codec
    a, b = codec.decode(runs[0][2]), other.decode(runs[0][2])
    if not all(torch.equal(x, y) for x, y in zip(a, b)):
        fail("two instances of the codec decode the same payload differently")


def check_expected_layout(codec: Codec) -> None:
    """See the module docstring."""
    update = sample_update(4)
    payload = codec.encode(update, rng=_gen(5), state={})
    plain = codec.decode(payload)
    checked = codec.decode(payload, expected=metas_of(update))
    if not all(torch.equal(x, y) for x, y in zip(plain, checked)):
        fail("decode with expected=metas_of(update) differs from decode without it")
    other = [torch.zeros(3, 3), *update[1:]]
    try:
        codec.decode(payload, expected=metas_of(other))
    except PayloadError:
        return
    fail("a payload of another layout (first tensor (8, 3, 3, 3), expected (3, 3)) was not refused")


def _decode_must_refuse(codec: Codec, data: Any, what: str) -> None:
    try:
        codec.decode(data)
    except PayloadError:
        return
    except Exception as exc:
        fail(f"{what} raised {type(exc).__name__} ({exc}); decode must raise PayloadError")
    fail(f"{what} decoded without error; it must raise PayloadError")


def check_malformed_payloads(codec: Codec) -> None:
    """See the module docstring."""
    payload = codec.encode(sample_update(6), rng=_gen(7), state={})
    for n in range(len(payload)):
        _decode_must_refuse(codec, payload[:n], f"the payload cut to {n} of {len(payload)} bytes")
    _decode_must_refuse(codec, payload + b"\x00", "the payload with one byte appended")
    _decode_must_refuse(codec, "not bytes", "a str instead of bytes")
    g = _gen(8)
    for i in range(64):
        size = int(torch.randint(0, 2 * len(payload) + 2, (1,), generator=g))
        junk = bytes(torch.randint(0, 256, (size,), generator=g, dtype=torch.uint8).tolist())
        try:
            codec.decode(junk)
        except PayloadError:
            continue
        except Exception as exc:
            kind = type(exc).__name__
            fail(f"random bytes (case {i}, {size} bytes) raised {kind} ({exc}), not PayloadError")


def check_error_bound(codec: Codec, nmse_bound: float, draws: int = 20) -> None:
    """``E||C(x) - x||^2 / ||x||^2 <= nmse_bound`` over ``draws`` encodes of a Gaussian update."""
    x = [torch.randn(64, 32, generator=_gen(9)), torch.randn(100, generator=_gen(10)) * 3]
    flat = _flat(x)
    rng = _gen(11)
    errors = [
        float((_flat(codec.decode(codec.encode(x, rng=rng))) - flat).pow(2).sum()) for _ in range(draws)
    ]
    nmse = sum(errors) / draws / float(flat.pow(2).sum())
    if not nmse <= nmse_bound:
        fail(f"normalized MSE {nmse:.3g} is above the bound {nmse_bound:.3g} given for this codec")


def check_unbiased(codec: Codec, samples: int = 400) -> None:
    """For a codec claiming ``unbiased``: the mean error of ``samples`` decodes of one update, projected
    on the update and on 8 random directions, is within 5 standard errors of 0 (a projection with no
    variance must be 0 up to float32 rounding)."""
    x = [torch.randn(20, 30, generator=_gen(12)), torch.randn(100, generator=_gen(13)) * 2 + 0.5]
    flat = _flat(x)
    rng = _gen(14)
    draws = torch.stack([_flat(codec.decode(codec.encode(x, rng=rng))) for _ in range(samples)])
    dirs = torch.cat([flat.unsqueeze(1), torch.randn(flat.numel(), 8, generator=_gen(15)).double()], 1)
    dirs = dirs / dirs.norm(dim=0)
    proj = (draws - flat) @ dirs
    mean, se = proj.mean(dim=0), proj.std(dim=0) / math.sqrt(samples)
    for j in range(dirs.shape[1]):
        along = "the update" if j == 0 else f"random direction {j}"
        if float(se[j]) <= 1e-6 * float(flat.norm()):
            if abs(float(mean[j])) > 1e-5 * float(flat.norm()):
                bias = float(mean[j])
                fail(f"the codec claims unbiased but its error along {along} is a constant {bias:.3g}")
        elif abs(float(mean[j])) > 5 * float(se[j]):
            z = float(mean[j]) / float(se[j])
            fail(f"the codec claims unbiased but the mean error along {along} is {z:.1f} standard errors")


def check_state(codec: Codec) -> None:
    """See the module docstring."""
    if not codec.stateful:
        return
    state: CodecState = {}
    for call in range(2):
        codec.encode(sample_update(call), rng=_gen(call), state=state)
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            if not bool(torch.isfinite(value).all()):
                fail(f"state[{key!r}] holds non-finite values")
        elif not isinstance(value, int | float) or not math.isfinite(value):
            fail(f"state[{key!r}] is {value!r}; keep only tensors, ints and finite floats")


def check_codec(source: CodecSource, *, nmse_bound: float | None = None, samples: int = 400) -> list[str]:
    """Run the codec contract (see the module docstring) on a codec, spec string or factory.

    Args:
        source: the codec, its spec string (``"mypkg.codecs:Int8Codec"``) or a factory.
        nmse_bound: the largest normalized MSE the codec promises (checked when given; a lossy codec
            should give one).
        samples: decodes drawn to test ``unbiased``.

    Returns:
        The names of the rules checked (all passed).

    Raises:
        ContractError: one message listing every rule broken, each in words.
    """
    codec = make_codec(source)
    second = make_codec(source) if not isinstance(source, Codec) else codec
    rules: list[tuple[str, Callable[[Codec], None]]] = [
        ("round_trip", check_round_trip),
        ("empty_update", check_empty_update),
        ("zero_in_zero_out", check_zero_in_zero_out),
        ("deterministic", lambda c: check_deterministic(c, second)),
        ("expected_layout", check_expected_layout),
        ("malformed_payloads", check_malformed_payloads),
        ("state", check_state),
    ]
    if nmse_bound is not None:
        rules.append(("error_bound", lambda c: check_error_bound(c, nmse_bound)))
    if codec.unbiased:
        rules.append(("unbiased", lambda c: check_unbiased(c, samples)))
    return run_rules(codec, rules, f"codec {getattr(codec, 'spec', type(codec).__name__)!r}")


class CodecContract:
    """Subclass as ``TestMyCodec(CodecContract)`` and set :attr:`codec`: pytest runs one test per rule."""

    #: The codec under test: a spec string, a codec or a factory.
    codec: ClassVar[Any] = None
    #: The codec's promised normalized MSE (None: not checked).
    nmse_bound: ClassVar[float | None] = None

    def _codec(self) -> Codec:
        if self.codec is None:
            raise ContractErrorMissing(type(self).__name__)
        return make_codec(self.codec)

    def test_round_trip(self) -> None:
        """Rule ``round_trip``."""
        check_round_trip(self._codec())

    def test_empty_update(self) -> None:
        """Rule ``empty_update``."""
        check_empty_update(self._codec())

    def test_zero_in_zero_out(self) -> None:
        """Rule ``zero_in_zero_out``."""
        check_zero_in_zero_out(self._codec())

    def test_deterministic(self) -> None:
        """Rule ``deterministic``."""
        check_deterministic(self._codec(), self._codec())

    def test_expected_layout(self) -> None:
        """Rule ``expected_layout``."""
        check_expected_layout(self._codec())

    def test_malformed_payloads(self) -> None:
        """Rule ``malformed_payloads``."""
        check_malformed_payloads(self._codec())

    def test_state(self) -> None:
        """Rule ``state``."""
        check_state(self._codec())

    def test_error_bound(self) -> None:
        """Rule ``error_bound`` (when :attr:`nmse_bound` is set)."""
        if self.nmse_bound is not None:
            check_error_bound(self._codec(), self.nmse_bound)

    def test_unbiased(self) -> None:
        """Rule ``unbiased`` (when the codec claims it)."""
        codec = self._codec()
        if codec.unbiased:
            check_unbiased(codec)


class ContractErrorMissing(TypeError):
    """A contract suite subclass that does not say what it tests."""

    def __init__(self, suite: str) -> None:
        super().__init__(f"{suite}: set the class attribute naming the plug-in under test (e.g. codec = ...)")
