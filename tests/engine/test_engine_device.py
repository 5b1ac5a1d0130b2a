"""``fedwave.engine.device``: what a CUDA run switches on (checked without a GPU: the settings are the
process's, the device object a name), that a CPU run switches nothing, and the error a run gives when
its training uses an operation that has no deterministic kernel."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from fedwave.config import load_config
from fedwave.engine.device import (
    CUBLAS_WORKSPACE,
    current_settings,
    explain_training_error,
    restore_settings,
    training_device,
)
from fedwave.errors import ConfigError
from fedwave.fl.run import build_simulation


@pytest.fixture
def restored() -> Iterator[None]:
    """Run a test with no cuBLAS setting in the environment; put every setting back afterwards."""
    saved = current_settings()
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    yield
    restore_settings(saved)


@pytest.mark.usefixtures("restored")
def test_a_cuda_device_gets_deterministic_kernels_in_ieee_float32() -> None:
    assert torch.backends.cudnn.allow_tf32  # PyTorch's default for convolutions, which this changes
    assert training_device("cuda:1") == torch.device("cuda", 1)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with torch.backends.cudnn.flags(enabled=False):  # later users of the flags still work
        pass


@pytest.mark.usefixtures("restored")
def test_deterministic_false_keeps_only_ieee_float32() -> None:
    training_device("cuda", deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.usefixtures("restored")
def test_a_cublas_setting_of_the_users_own_is_kept() -> None:
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
    training_device("cuda")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.usefixtures("restored")
def test_the_cpu_switches_nothing() -> None:
    before = current_settings()
    assert training_device("cpu") == torch.device("cpu")
    assert current_settings() == before


@pytest.mark.usefixtures("restored")
def test_restore_settings_undoes_a_cuda_run() -> None:
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # all to be changed
    before = current_settings()
    training_device("cuda")
    assert current_settings() != before
    restore_settings(before)
    assert current_settings() == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ  # the fixture removed it; restored as absent


def test_only_the_device_errors_are_explained() -> None:
    exc = RuntimeError("put_ does not have a deterministic implementation, but you set ...\nmore")
    explained = explain_training_error(exc)
    assert isinstance(explained, ConfigError)
    assert "engine.deterministic=false" in str(explained) and "engine.device=cpu" in str(explained)
    assert "put_ does not have a deterministic implementation" in str(explained)
    oom = explain_training_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert isinstance(oom, ConfigError)
    assert "Tried to allocate 2.00 GiB" in str(oom) and "engine.executor=sequential" in str(oom)
    assert explain_training_error(RuntimeError("shapes cannot be multiplied")) is None


def test_a_run_that_runs_out_of_device_memory_stops_with_a_config_error() -> None:
    sim = build_simulation(load_config(None, ["fl.num_ues=4", "fl.rounds=1"]))
    model = sim.driver.users[0].model

    def forward(x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    model.forward = forward
    with pytest.raises(ConfigError, match=r"engine\.device: .*out of device memory.*9\.00 GiB"):
        sim.run_rounds(1)


@pytest.mark.usefixtures("restored")
def test_a_run_whose_training_has_no_deterministic_kernel_stops_with_a_config_error() -> None:
    """``Tensor.put_`` has no deterministic kernel on the CPU either: PyTorch raises as it would on a GPU."""
    sim = build_simulation(load_config(None, ["fl.num_ues=4", "fl.rounds=1"]))
    model = sim.driver.users[0].model
    plain = model.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        torch.zeros(2).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))
        out: torch.Tensor = plain(x)
        return out

    model.forward = forward
    torch.use_deterministic_algorithms(True)
    with pytest.raises(ConfigError, match=r"engine\.deterministic: .*put_ does not have a deterministic"):
        sim.run_rounds(1)
