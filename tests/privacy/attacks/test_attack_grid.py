"""The attack's picture grid is drawn by users.plot.comparison_grid: layout, titles and captions."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fedwave.errors import ConfigError
from fedwave.privacy.attacks.grid import grid_png
from fedwave.users.plot import comparison_grid


def test_captions_join_the_reconstructions_titles() -> None:
    true = torch.zeros(3, 1, 8, 8)
    fig = comparison_grid(
        true, true + 1, mean=0.0, std=1.0, true_labels=[1, 2, 3], reconstructed_labels=[1, 5, 3],
        captions=["10.0 dB", "20.0 dB", "30.0 dB"], max_columns=3,
    )  # fmt: skip
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["1", "2", "3", "1\n10.0 dB", "5\n20.0 dB", "3\n30.0 dB"]
    with pytest.raises(ConfigError, match="2 captions given for 3 samples"):
        comparison_grid(true, true, mean=0.0, std=1.0, captions=["a", "b"])


def test_grid_puts_each_trials_samples_side_by_side_true_above_reconstructed() -> None:
    # three trials of two samples: true samples are black, reconstructions white
    true = [torch.zeros(2, 1, 8, 8) for _ in range(3)]
    recon = [torch.ones(2, 1, 8, 8) for _ in range(3)]
    labels = [torch.tensor([0, 1]) for _ in range(3)]
    png = grid_png(true, recon, true_labels=labels, recon_labels=labels, captions=[["x", "y"]] * 3)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert image.shape[1] == 6 * 120  # six panels of 1.2 in at 100 dpi in one row pair
    top, bottom = image[: image.shape[0] // 2], image[image.shape[0] // 2 :]
    # the panels' pixels: black in the top half (true), white in the bottom half (reconstructed)
    assert (top < 10).sum() > 6 * 40 * 40 and (bottom < 10).sum() < 6 * 40
