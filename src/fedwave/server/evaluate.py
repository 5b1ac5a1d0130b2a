"""Test accuracy and loss of the global model on the held-out test split."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Evaluation:
    """Accuracy (fraction in [0, 1]) and mean loss (nats) on ``num_samples`` test samples."""

    accuracy: float
    loss: float
    num_samples: int


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int | None = None
) -> Evaluation:
    """Evaluate ``model`` in eval mode on ``(x, y)`` in batches of ``batch_size`` samples; the model's
    mode is restored afterwards.

    ``batch_size=None``: 128 where ``x`` is on the CPU, 1024 on another device (a GPU: fewer launches
    and reads back to the host; the figures below were not measured there). 128 keeps a convolutional
    model's activations near the cache: on the 2-core machine (``python benchmarks/eval_batch.py``,
    MNIST's 10,000 test images, one thread) batches of 1024 took 9.58 s for ``cnn``, 14.05 s for
    ``convnet`` and 11.66 s for ``resnet``, batches of 128 6.01, 6.51 and 5.99 s; ``lenet`` and ``2nn``
    took the same time either way. The batch size changes float rounding only: the loss's per-batch
    sums, and the last bits of logits where a kernel is chosen by batch size (``cnn``'s and
    ``convnet``'s accuracy was the same at 1024, 256 and 128).

    When ``x`` lives on another device than the model's parameters (the BS keeps its model on the CPU and
    its test split on ``engine.device``), a copy of the model on ``x``'s device is evaluated.
    """
    first = next(iter(model.parameters()), None)
    if first is not None and first.device != x.device:
        model = copy.deepcopy(model).to(x.device)
    was_training = model.training
    model.eval()
    correct = 0
    loss_sum = 0.0
    if batch_size is None:
        batch_size = 128 if x.device.type == "cpu" else 1024
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    n = int(x.shape[0])
    return Evaluation(accuracy=correct / max(n, 1), loss=loss_sum / max(n, 1), num_samples=n)
