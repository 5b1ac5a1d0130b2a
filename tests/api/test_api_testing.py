"""fedwave.testing: the contract suites pass on fedwave's own plug-ins and fail, in words, on broken ones."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import pytest
import torch
from tests.api.conftest import EXAMPLES

from fedwave import Codec, CodecState, get_codec
from fedwave.codecs.header import TensorMeta
from fedwave.server.aggregators import Aggregator
from fedwave.testing import AggregatorContract, CodecContract, ContractError, check_aggregator, check_codec


def _example_codec() -> type[Codec]:
    spec = importlib.util.spec_from_file_location("int8_codec_for_tests", EXAMPLES / "int8_codec.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls: type[Codec] = module.Int8Codec
    return cls


Int8Codec = _example_codec()


@pytest.mark.parametrize("spec", ["fp32", "uniform:8", "qsgd:4:elias", "topk:0.3", "ef(sign)", "powersgd:2"])
def test_builtin_codecs_pass(spec: str) -> None:
    names = check_codec(spec, samples=200)
    assert "malformed_payloads" in names
    assert ("unbiased" in names) == get_codec(spec).unbiased


class TestInt8Contract(CodecContract):
    """The example codec through the pytest base class: one test per rule."""

    codec = Int8Codec
    nmse_bound = 1e-4


class TestMedianContract(AggregatorContract):
    aggregator = "median"


class _Wrapped(Codec):
    """Int8 with one thing broken (subclasses override one method)."""

    def __init__(self) -> None:
        self.inner = Int8Codec()
        self.spec = f"broken-{type(self).__name__}"

    def encode(
        self, tensors: Sequence[torch.Tensor], *, rng: torch.Generator, state: CodecState | None = None
    ) -> bytes:
        return self.inner.encode(tensors, rng=rng, state=state)

    def decode(self, payload: bytes, *, expected: Sequence[TensorMeta] | None = None) -> list[torch.Tensor]:
        return self.inner.decode(payload, expected=expected)


class ScaledUnbiased(_Wrapped):
    """uniform:8 (unbiased) with its output 3% too large, still claiming unbiased."""

    unbiased = True

    def __init__(self) -> None:
        super().__init__()
        self.inner = get_codec("uniform:8")  # type: ignore[assignment]

    def decode(self, payload: bytes, *, expected: Sequence[TensorMeta] | None = None) -> list[torch.Tensor]:
        return [t * 1.03 for t in self.inner.decode(payload, expected=expected)]


class ChangesInput(_Wrapped):
    def encode(
        self, tensors: Sequence[torch.Tensor], *, rng: torch.Generator, state: CodecState | None = None
    ) -> bytes:
        out = self.inner.encode(tensors, rng=rng, state=state)
        if tensors and tensors[0].numel():
            tensors[0].mul_(0.5)
        return out


class NoLengthCheck(_Wrapped):
    def decode(self, payload: bytes, *, expected: Sequence[TensorMeta] | None = None) -> list[torch.Tensor]:
        return [torch.frombuffer(bytearray(payload[4:8]), dtype=torch.float32)]


class GlobalRandomness(_Wrapped):
    def encode(
        self, tensors: Sequence[torch.Tensor], *, rng: torch.Generator, state: CodecState | None = None
    ) -> bytes:
        noisy = [t + 0.01 * torch.randn(t.shape).to(t.dtype) for t in tensors]  # not from rng
        return self.inner.encode(noisy, rng=rng, state=state)


class DropsATensor(_Wrapped):
    def decode(self, payload: bytes, *, expected: Sequence[TensorMeta] | None = None) -> list[torch.Tensor]:
        return self.inner.decode(payload, expected=expected)[:-1]


@pytest.mark.parametrize(
    ("codec", "rule", "words"),
    [
        (ScaledUnbiased, "unbiased", "claims unbiased but the mean error along the update"),
        (ChangesInput, "round_trip", "encode modified the tensors it was given"),
        (NoLengthCheck, "malformed_payloads", "decode must raise PayloadError"),
        (GlobalRandomness, "deterministic", "all randomness must come from rng"),
        (DropsATensor, "round_trip", "decode gave shapes"),
    ],
)
def test_broken_codecs_fail_with_a_readable_message(codec: type[Codec], rule: str, words: str) -> None:
    with pytest.raises(ContractError) as err:
        check_codec(codec, samples=200)
    message = str(err.value)
    assert message.startswith(f"codec 'broken-{codec.__name__}' breaks")
    assert f"- {rule}: " in message and words in message
    assert "Traceback" not in message


def test_a_codec_above_its_error_bound_fails() -> None:
    assert "error_bound" in check_codec(Int8Codec, nmse_bound=1e-4)
    with pytest.raises(ContractError, match=r"error_bound: normalized MSE .* is above the bound 1e-07"):
        check_codec(Int8Codec, nmse_bound=1e-7)


@pytest.mark.parametrize(
    "spec", ["mean", "median", "trimmed_mean:0.2", "krum", "multi_krum", "rfa", "centered_clip"]
)
def test_builtin_aggregators_pass(spec: str) -> None:
    assert check_aggregator(spec) == ["shapes", "consensus", "permutation", "robust"]


def _rule(fn: object, robust: bool) -> Aggregator:
    return Aggregator("broken", fn, robust=robust)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("agg", "words"),
    [
        (_rule(lambda x, w, c: (w / w.sum()) @ x, True), "robust: the rule claims robust but one outlier"),
        (_rule(lambda x, w, c: x.mean(0) * 0.9, False), "consensus: seven equal updates aggregate"),
        (_rule(lambda x, w, c: x[-1], False), "permutation: reordering the updates"),
        (_rule(lambda x, w, c: x.mean(0)[:-1], False), "shapes"),
    ],
)
def test_broken_aggregators_fail_with_a_readable_message(agg: Aggregator, words: str) -> None:
    with pytest.raises(ContractError, match="aggregator 'broken' breaks") as err:
        check_aggregator(agg)
    assert words in str(err.value)
