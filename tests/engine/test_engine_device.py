"""``fedwave.engine.device.training_device``: what a CUDA run switches on (checked without a GPU: the
settings are the process's, the device object a name) and that a CPU run switches nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from fedwave.engine.device import CUBLAS_WORKSPACE, training_device

if not hasattr(torch.backends.cudnn, "conv"):  # torch < 2.9: the older allow_tf32 flags
    pytest.skip("this torch has no per-operator fp32_precision settings", allow_module_level=True)
CONV = torch.backends.cudnn.conv


def _settings() -> tuple[object, ...]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        CONV.fp32_precision,
        torch.backends.cuda.matmul.fp32_precision,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run a test with no cuBLAS setting in the environment; put every setting back afterwards."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = _settings()
    yield
    torch.use_deterministic_algorithms(bool(saved[0]))
    torch.backends.cudnn.deterministic = bool(saved[1])
    torch.backends.cudnn.benchmark = bool(saved[2])
    CONV.fp32_precision = str(saved[3])
    torch.backends.cuda.matmul.fp32_precision = str(saved[4])


@pytest.mark.usefixtures("restored")
def test_a_cuda_device_gets_deterministic_kernels_in_ieee_float32() -> None:
    assert CONV.fp32_precision == "tf32"  # PyTorch's default that this changes
    assert training_device("cuda:1") == torch.device("cuda", 1)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert CONV.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"


@pytest.mark.usefixtures("restored")
def test_a_cublas_setting_of_the_users_own_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    training_device("cuda")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.usefixtures("restored")
def test_the_cpu_switches_nothing() -> None:
    before = _settings()
    assert training_device("cpu") == torch.device("cpu")
    assert _settings() == before
