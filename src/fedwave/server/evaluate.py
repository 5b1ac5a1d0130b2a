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
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> Evaluation:
    """Evaluate ``model`` in eval mode on ``(x, y)``; the model's mode is restored afterwards.

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
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    n = int(x.shape[0])
    return Evaluation(accuracy=correct / max(n, 1), loss=loss_sum / max(n, 1), num_samples=n)
