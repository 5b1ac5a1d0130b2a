"""A synthetic dataset for tests: seeded Gaussian class clusters, squashed into the [0, 1] data range.

Each class ``c`` has a centre ``mu_c ~ N(0, separation^2 I)`` in ``prod(input_shape)`` dimensions; a sample
of class ``c`` is ``sigmoid(mu_c + noise * N(0, I))``, so the raw data lies in (0, 1) like image pixels.
Labels are balanced (``num_samples // num_classes`` per class, the first ``num_samples % num_classes``
classes one more) and shuffled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedwave.errors import ConfigError


@dataclass(frozen=True)
class SyntheticSpec:
    """The shape of a synthetic dataset.

    Attributes:
        num_samples: samples before the train/test split (``test_fraction`` of them go to the test set).
        num_classes: number of clusters (>= 2).
        input_shape: shape of one sample, e.g. ``(16,)`` or ``(1, 8, 8)``; the first axis is the channel
            axis when there are two or more axes.
        separation: standard deviation of the class centres (larger: easier to classify).
        noise: standard deviation of the samples around their centre.
    """

    num_samples: int = 600
    num_classes: int = 4
    input_shape: tuple[int, ...] = (16,)
    separation: float = 2.0
    noise: float = 1.0

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ConfigError(f"synthetic.num_classes must be >= 2, got {self.num_classes}")
        if self.num_samples < 2 * self.num_classes:
            raise ConfigError(
                f"synthetic.num_samples must be >= 2 * num_classes = {2 * self.num_classes} "
                f"(a train and a test sample per class), got {self.num_samples}"
            )
        if not self.input_shape or any(int(d) < 1 for d in self.input_shape):
            raise ConfigError(
                f"synthetic.input_shape must be non-empty positive sizes, got {self.input_shape}"
            )
        if not (self.separation >= 0 and self.noise > 0):
            raise ConfigError(
                f"synthetic.separation must be >= 0 and noise > 0, got {self.separation} and {self.noise}"
            )


def make_synthetic(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``(x, y)``: float32 ``(num_samples, *input_shape)`` in (0, 1), int64 labels ``(num_samples,)``."""
    dim = math.prod(spec.input_shape)
    centres = rng.normal(0.0, spec.separation, size=(spec.num_classes, dim))
    y = rng.permutation(np.arange(spec.num_samples, dtype=np.int64) % spec.num_classes)
    z = centres[y] + rng.normal(0.0, spec.noise, size=(spec.num_samples, dim))
    x = 1.0 / (1.0 + np.exp(-z))
    return x.reshape((spec.num_samples, *spec.input_shape)).astype(np.float32), y
