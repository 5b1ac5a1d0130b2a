"""The analytic FLOP count equals ``FlopCounterMode``'s for every zoo model and input shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedwave.devices.flops import training_flops_per_sample
from fedwave.models.zoo import build_model, model_names

SHAPES = [((1, 8, 8), 10), ((3, 32, 32), 10), ((1, 40), 4)]


@pytest.mark.parametrize("name", model_names())
def test_counted_equals_measured(name: str) -> None:
    for shape, classes in SHAPES:
        model = build_model(name, shape, classes)
        counted = training_flops_per_sample(model, shape, classes)
        measured = training_flops_per_sample(model, shape, classes, measure=True)
        assert counted == measured > 0


def test_unknown_layers_are_measured() -> None:
    class Gram(nn.Module):  # a matmul outside any Linear: only the measuring path sees it
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x @ torch.eye(6))

    flops = training_flops_per_sample(Gram(), (6,), 3)
    assert flops == training_flops_per_sample(Gram(), (6,), 3, measure=True)
    assert flops > 4 * 6 * 3  # the fc layer alone (first layer: 2 + 2 per multiply-add)
