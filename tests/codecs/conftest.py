"""Shared parametrization of the codec contract suite: every codec family, with typical arguments."""

from __future__ import annotations

import pytest
import torch

from fedwave.codecs import get_codec

#: One or more specs of every codec family (test_codecs_contract checks that none is missing).
ALL_SPECS = [
    "fp32",
    "fp16",
    "bf16",
    "uniform:1",
    "uniform:4",
    "uniform:8",
    "uniform:3:16",
    "qsgd:1",
    "qsgd:16",
    "qsgd:300",
    "qsgd:4:elias",
    "qsgd:64:elias",
    "terngrad",
    "sign",
    "topk:0.02",
    "topk:0.3",
    "randk:0.1",
    "drive",
    "eden:1",
    "eden:2",
    "eden:4",
    "powersgd:2",
    "ef(topk:0.05)",
    "ef(sign)",
    "ef(powersgd:1)",
]
UNBIASED_SPECS = [s for s in ALL_SPECS if get_codec(s).unbiased]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "spec" in metafunc.fixturenames:
        metafunc.parametrize("spec", ALL_SPECS)
    if "unbiased_spec" in metafunc.fixturenames:
        metafunc.parametrize("unbiased_spec", UNBIASED_SPECS)


@pytest.fixture
def all_specs() -> list[str]:
    return list(ALL_SPECS)


def make_update(seed: int = 0) -> list[torch.Tensor]:
    """The contract suite's model-like update (:func:`fedwave.testing.codecs.sample_update`): conv weight,
    bias, float16 matrix, empty, 3-D with a 0 dim, float64 vector, scalar, bfloat16 matrix."""
    from fedwave.testing.codecs import sample_update

    return sample_update(seed)


@pytest.fixture
def update() -> list[torch.Tensor]:
    return make_update()
