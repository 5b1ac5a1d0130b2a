"""The model zoo, by name.

Every builder takes the input shape ``(channels, *spatial)`` (one or two spatial dimensions) and the
number of classes, and returns a fresh ``nn.Module`` producing logits. Spatial sizes are adapted by
computing the flattened feature size with a dummy forward pass, so each model works on 8x8 digits,
28x28 MNIST, 32x32 CIFAR-10 and 40-long MNIST-1D alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
from torch import nn

from fedwave.errors import ConfigError

Builder = Callable[[tuple[int, ...], int], nn.Module]
_REGISTRY: dict[str, tuple[Builder, str]] = {}


def register(name: str, description: str) -> Callable[[Builder], Builder]:
    """Register a model builder under ``name`` (decorator)."""

    def wrap(fn: Builder) -> Builder:
        _REGISTRY[name] = (fn, description)
        return fn

    return wrap


def model_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def describe_models() -> dict[str, str]:
    """Model name -> one-line description."""
    return {k: v[1] for k, v in sorted(_REGISTRY.items())}


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the model ``name`` for inputs of ``input_shape`` (without batch) and ``num_classes`` outputs.

    Raises:
        ConfigError: for an unknown name (listing the valid ones) or an input shape the model cannot take.
    """
    builder = resolve_builder(name)
    if len(input_shape) not in (2, 3):
        raise ConfigError(
            f"model '{name}' needs inputs shaped (channels, length) or (channels, height, width); "
            f"got {input_shape}."
        )
    return builder(tuple(input_shape), num_classes)


def resolve_builder(name: str) -> Builder:
    """The builder of model ``name``: registered, or a plug-in (import path, entry point; see
    :mod:`fedwave.plugins`).

    Raises:
        ConfigError: for an unknown name (listing the valid ones) or a plug-in that cannot be loaded.
    """
    if name in _REGISTRY:
        return _REGISTRY[name][0]
    from fedwave.plugins import find, model_builder

    obj = find("models", name)
    if obj is not None:
        return model_builder(obj, name)
    near = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    raise ConfigError(
        f"model.name: unknown model '{name}'.{hint} Valid models: {', '.join(model_names())}, or an "
        "import path package.module:Model."
    )


def num_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (tied parameters counted once)."""
    return sum(p.numel() for p in model.parameters())


def _conv(dim: int) -> type[nn.Conv1d] | type[nn.Conv2d]:
    return nn.Conv1d if dim == 1 else nn.Conv2d


def _maxpool(dim: int) -> nn.Module:
    return nn.MaxPool1d(2) if dim == 1 else nn.MaxPool2d(2)


def _flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        was_training = features.training
        features.eval()
        out = features(torch.zeros(1, *input_shape))
        features.train(was_training)
    return int(out.numel())


class _Sequential(nn.Module):
    """features -> flatten -> classifier."""

    def __init__(self, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register("convnet", "seed note 002 CNN: conv3x3(32)-conv3x3(64)-maxpool-fc128-fc (ReLU); the default")
def convnet(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Two 3x3 convolutions (32 and 64 channels, no padding), 2x max-pool, FC 128, FC classes.

    On 28x28 inputs this is 1,199,882 parameters; on 8x8 digits 53,002.
    """
    dim, c = len(input_shape) - 1, input_shape[0]
    conv = _conv(dim)
    features = nn.Sequential(conv(c, 32, 3), nn.ReLU(), conv(32, 64, 3), nn.ReLU(), _maxpool(dim))
    flat = _flat_size(features, input_shape)
    classifier = nn.Sequential(nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, num_classes))
    return _Sequential(features, classifier)


@register("cnn", "McMahan et al. 2017 MNIST CNN: conv5x5(32)-pool-conv5x5(64)-pool-fc512-fc")
def cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """5x5 convolutions (32, 64 channels, 'same' padding) each followed by 2x max-pool, FC 512, FC classes.

    1,663,370 parameters on 28x28 inputs with 10 classes.
    """
    dim, c = len(input_shape) - 1, input_shape[0]
    conv = _conv(dim)
    features = nn.Sequential(
        conv(c, 32, 5, padding=2),
        nn.ReLU(),
        _maxpool(dim),
        conv(32, 64, 5, padding=2),
        nn.ReLU(),
        _maxpool(dim),
    )
    flat = _flat_size(features, input_shape)
    classifier = nn.Sequential(nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, num_classes))
    return _Sequential(features, classifier)


def _mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...]) -> nn.Module:
    d = 1
    for s in input_shape:
        d *= s
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, num_classes))
    return _Sequential(nn.Identity(), nn.Sequential(*layers))


@register("2nn", "McMahan et al. 2017 MNIST 2NN: fc200-fc200-fc (ReLU)")
def two_nn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Two hidden layers of 200 ReLU units: 199,210 parameters on 28x28 with 10 classes."""
    return _mlp(input_shape, num_classes, (200, 200))


@register("mlp", "one hidden layer of 128 ReLU units")
def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Flatten, FC 128, ReLU, FC classes."""
    return _mlp(input_shape, num_classes, (128,))


class _BasicBlock(nn.Module):
    def __init__(self, dim: int, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        conv = _conv(dim)
        bn = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(c_out)
        self.conv2 = conv(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = bn(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride=stride, bias=False), bn(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@register("resnet", "small ResNet (3 stages of one basic block, 16/32/64 channels) with BatchNorm")
def resnet(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A ResNet-8: 3x3 stem (16), three basic blocks (16, 32/2, 64/2), global average pool, FC.

    Its BatchNorm layers carry buffers (running mean/var, num_batches_tracked) that federated training
    must aggregate.
    """
    dim, c = len(input_shape) - 1, input_shape[0]
    conv = _conv(dim)
    bn = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
    pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
    features = nn.Sequential(
        conv(c, 16, 3, padding=1, bias=False),
        bn(16),
        nn.ReLU(),
        _BasicBlock(dim, 16, 16, 1),
        _BasicBlock(dim, 16, 32, 2),
        _BasicBlock(dim, 32, 64, 2),
        pool,
    )
    return _Sequential(features, nn.Linear(64, num_classes))


@register("lenet", "LeNet-style CNN with sigmoid activations (the gradient-leakage attack target)")
def lenet(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Three 5x5 convolutions of 12 channels (strides 2, 2, 1, 'same' padding) with sigmoids, then FC.

    Smooth (twice differentiable) activations make it the usual target of optimisation-based
    gradient-inversion attacks (Zhu et al. 2019).
    """
    dim, c = len(input_shape) - 1, input_shape[0]
    conv = _conv(dim)
    features = nn.Sequential(
        conv(c, 12, 5, padding=2, stride=2),
        nn.Sigmoid(),
        conv(12, 12, 5, padding=2, stride=2),
        nn.Sigmoid(),
        conv(12, 12, 5, padding=2, stride=1),
        nn.Sigmoid(),
    )
    flat = _flat_size(features, input_shape)
    return _Sequential(features, nn.Linear(flat, num_classes))
