"""The torch device of local training, and what a GPU needs for bit-identical runs.

On a CUDA device, PyTorch by default may pick kernels whose float sums depend on thread scheduling
(atomic adds in some cuDNN convolution algorithms, cuBLAS with several workspaces), so the same run can
differ in the last bits from one time to the next. :func:`training_device` switches the process to
PyTorch's deterministic algorithms (``torch.use_deterministic_algorithms(True)``, cuDNN's deterministic
mode without its benchmark search) and asks cuBLAS for a fixed workspace
(``CUBLAS_WORKSPACE_CONFIG=:4096:8``, unless already set; cuBLAS reads it when the process's first
cuBLAS handle is made, so it must be set before any CUDA matrix product). It also turns off TF32, which
PyTorch uses by default for float32 convolutions on NVIDIA GPUs (a 10-bit mantissa: MNIST ``cnn``'s
model after 2 rounds differed from the CPU's by about 1e-2 with it): a float32 run computes in IEEE
float32 on every device. These settings hold for the whole process. The CPU needs none of them
(``engine.threads`` fixes its reductions).
"""

from __future__ import annotations

import os

import torch

#: cuBLAS's fixed-workspace setting for reproducible results (NVIDIA's cuBLAS documentation, "Results
#: reproducibility"); ``:16:8`` is the other accepted value.
CUBLAS_WORKSPACE = ":4096:8"


def training_device(name: str) -> torch.device:
    """The device ``name`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``), made deterministic if it is CUDA."""
    device = torch.device(name)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        _ieee_float32()
    return device


def _ieee_float32() -> None:
    """Float32 convolutions and matrix products in IEEE float32 on CUDA, not TF32."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9's settings
        conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:  # the older flags (the two APIs may not be mixed)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
