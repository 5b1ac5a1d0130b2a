"""The torch device of local training, and what a GPU needs for bit-identical runs.

On a CUDA device, PyTorch by default may pick kernels whose float sums depend on thread scheduling
(atomic adds in some cuDNN convolution algorithms, cuBLAS with several workspaces), so the same run can
differ in the last bits from one time to the next. With ``engine.deterministic`` (the default),
:func:`training_device` switches the process to PyTorch's deterministic algorithms
(``torch.use_deterministic_algorithms(True)``, cuDNN's deterministic mode without its benchmark search)
and asks cuBLAS for a fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8``, unless already set; cuBLAS
reads it when the process's first cuBLAS handle is made, so it must be set before any CUDA matrix
product). An operation without a deterministic CUDA kernel then raises; the driver turns that error into
:class:`~fedwave.errors.ConfigError` (:func:`explain_training_error`, which also explains running out
of device memory).

Whatever ``engine.deterministic`` says, a CUDA run turns off TF32, which PyTorch uses by default for
float32 convolutions on NVIDIA GPUs (a 10-bit mantissa: on an H200, MNIST ``cnn``'s model after 2 rounds
differed from the CPU's by about 2e-3 with it, 3e-8 without): a float32 run computes in IEEE float32 on
every device. It does so through the ``allow_tf32`` flags, which every supported torch has and which
leave later readers of those flags working (torch >= 2.9's per-operator ``fp32_precision`` settings
cannot be mixed with them). These settings hold for the whole process: a CPU run after a CUDA run in the
same process keeps them (its results do not change); :func:`current_settings` and
:func:`restore_settings` save and put them back. The CPU needs none of them (``engine.threads``
fixes its reductions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from fedwave.errors import ConfigError

#: cuBLAS's fixed-workspace setting for reproducible results (NVIDIA's cuBLAS documentation, "Results
#: reproducibility"); ``:16:8`` is the other accepted value.
CUBLAS_WORKSPACE = ":4096:8"

#: What PyTorch's error says when deterministic algorithms are on and an operation has none.
_NO_DETERMINISTIC_KERNEL = "does not have a deterministic implementation"


def training_device(name: str, deterministic: bool = True) -> torch.device:
    """The device ``name`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``); on CUDA, IEEE float32, and
    deterministic kernels when ``deterministic``."""
    device = torch.device(name)
    if device.type == "cuda":
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.allow_tf32 = False  # convolutions (and cuDNN's RNNs)
        torch.backends.cuda.matmul.allow_tf32 = False
    return device


@dataclass(frozen=True)
class ProcessSettings:
    """The process-wide settings that :func:`training_device` may change (``cublas_workspace``: the
    ``CUBLAS_WORKSPACE_CONFIG`` environment variable, None when unset)."""

    deterministic_algorithms: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool
    cudnn_allow_tf32: bool
    matmul_allow_tf32: bool
    cublas_workspace: str | None


def current_settings() -> ProcessSettings:
    """The settings as they are now (to hand to :func:`restore_settings` after a CUDA run)."""
    return ProcessSettings(
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )


def restore_settings(saved: ProcessSettings) -> None:
    """Put back settings read by :func:`current_settings` (the cuBLAS variable takes effect only in a
    process whose cuBLAS has not started yet)."""
    torch.use_deterministic_algorithms(saved.deterministic_algorithms)
    torch.backends.cudnn.deterministic = saved.cudnn_deterministic
    torch.backends.cudnn.benchmark = saved.cudnn_benchmark
    torch.backends.cudnn.allow_tf32 = saved.cudnn_allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = saved.matmul_allow_tf32
    if saved.cublas_workspace is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved.cublas_workspace


def explain_training_error(exc: RuntimeError) -> ConfigError | None:
    """A :class:`ConfigError` saying what to do when local training raised ``exc`` because of the device
    set-up, None for any other error:

    - PyTorch's refusal of an operation that has no deterministic kernel (a plug-in model's, say);
    - the device running out of memory (``torch.OutOfMemoryError``): a large model, or the batched
      executor's stacked group (:data:`fedwave.engine.batched.GPU_STACK_BUDGET_BYTES`) on a small GPU.
    """
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, torch.OutOfMemoryError):
        return ConfigError(
            f"engine.device: local training ran out of device memory ({first}); use "
            "engine.executor=sequential (one UE at a time), a smaller model or engine.device=cpu"
        )
    if _NO_DETERMINISTIC_KERNEL in str(exc):
        return ConfigError(
            f"engine.deterministic: local training used an operation without a deterministic CUDA kernel "
            f"({first}); set engine.deterministic=false (runs on this GPU are then not bit-identical from "
            "one time to the next) or engine.device=cpu"
        )
    return None
