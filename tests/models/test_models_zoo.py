"""The model zoo: parameter counts from the papers, shapes, buffers."""

from __future__ import annotations

import pytest
import torch

from fedwave.errors import ConfigError
from fedwave.models import build_model, model_names, num_parameters


@pytest.mark.parametrize(
    ("name", "shape", "count"),
    [
        ("cnn", (1, 28, 28), 1_663_370),  # McMahan et al. 2017
        ("2nn", (1, 28, 28), 199_210),  # McMahan et al. 2017
        ("convnet", (1, 28, 28), 1_199_882),  # seed note 002
        ("convnet", (1, 8, 8), 53_002),
    ],
)
def test_parameter_counts(name: str, shape: tuple[int, ...], count: int) -> None:
    assert num_parameters(build_model(name, shape, 10)) == count


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 40)])
def test_every_model_takes_every_input_shape(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape, 7)
    out = model(torch.zeros(2, *shape))
    assert out.shape == (2, 7)


def test_resnet_has_batchnorm_buffers() -> None:
    model = build_model("resnet", (1, 8, 8), 10)
    names = [n for n, _ in model.named_buffers()]
    assert any(n.endswith("running_mean") for n in names)
    assert any(n.endswith("num_batches_tracked") for n in names)


def test_lenet_uses_sigmoid() -> None:
    model = build_model("lenet", (1, 28, 28), 10)
    assert any(isinstance(m, torch.nn.Sigmoid) for m in model.modules())


def test_unknown_model_suggests_nearest() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'convnet'"):
        build_model("convnt", (1, 8, 8), 10)
