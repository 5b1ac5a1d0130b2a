"""Pictures of user data: de-normalisation, grids, the true-over-reconstructed PNG, ``user.plot``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from torch import nn

from fedwave.errors import ConfigError
from fedwave.users import UserDataSource
from fedwave.users.plot import comparison_grid, save_comparison_png, to_display

from .helpers import payload, user

MEAN, STD = 0.3, 0.2


def _normalise(raw: torch.Tensor) -> torch.Tensor:
    return (raw - MEAN) / STD


def test_to_display_undoes_the_normalisation_and_clamps() -> None:
    raw = torch.tensor([[[[0.0, 0.25], [0.5, 1.0]]]])
    torch.testing.assert_close(to_display(_normalise(raw), MEAN, STD), raw)
    outside = _normalise(torch.tensor([[[[-0.5, 1.5]]]]))
    assert to_display(outside, MEAN, STD).tolist() == [[[[0.0, 1.0]]]]
    rgb = torch.zeros(1, 3, 1, 1)  # per-channel statistics: raw = mean
    assert to_display(rgb, [0.1, 0.2, 0.3], [1.0, 1.0, 1.0]).flatten().tolist() == pytest.approx(
        [0.1, 0.2, 0.3]
    )
    scaled = to_display(torch.tensor([[[[2.0, 4.0], [3.0, 6.0]]]]), MEAN, STD, scale=True)
    assert scaled.flatten().tolist() == pytest.approx([0.0, 0.5, 0.25, 1.0])
    with pytest.raises(ConfigError, match="2 entries; the data has 3 channels"):
        to_display(rgb, [0.1, 0.2], [1.0])


def _brightness(png: np.ndarray) -> np.ndarray:
    return png[..., :3].mean(-1)


@pytest.mark.parametrize("true_white", [True, False])
def test_comparison_png_has_true_row_over_reconstructed_row(tmp_path: Path, true_white: bool) -> None:
    white, black = _normalise(torch.ones(3, 1, 8, 8)), _normalise(torch.zeros(3, 1, 8, 8))
    true, rec = (white, black) if true_white else (black, white)
    path = save_comparison_png(tmp_path / "sub" / "grid.png", true, rec, mean=MEAN, std=STD)
    img = imread(path)
    assert img.shape[:2] == (240, 360)  # 2 rows x 3 columns of 1.2 in at 100 dpi
    top, bottom = _brightness(img[:120]).mean(), _brightness(img[120:]).mean()
    # black panels cover a good part of their half on the white page
    assert (top > bottom + 0.2) if true_white else (bottom > top + 0.2)


def test_comparison_grid_wraps_and_titles_with_class_names(tmp_path: Path) -> None:
    x = torch.zeros(20, 1, 8, 8)
    labels = torch.arange(20) % 3
    fig = comparison_grid(
        x, x, mean=MEAN, std=STD, true_labels=labels, reconstructed_labels=labels, class_names=("a", "b", "c")
    )
    assert len(fig.axes) == 4 * 16  # 20 samples: two row pairs of 16 columns
    assert [fig.axes[i].get_title() for i in range(3)] == ["a", "b", "c"]
    assert fig.axes[16].get_title() == "a"  # reconstruction of sample 0, below it
    assert fig.axes[2 * 16].get_title() == "b"  # sample 16 (label 1) opens the second pair
    assert fig.axes[2 * 16 + 3].images and not fig.axes[2 * 16 + 4].images  # samples 16..19 only
    with pytest.raises(ConfigError, match="differ in shape"):
        comparison_grid(x, x[:3], mean=MEAN, std=STD)


def _plot_user(metadata: dict | None) -> object:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    raw = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    data = UserDataSource(
        _normalise(raw), torch.tensor([0, 1, 2, 0, 1]), [np.arange(5)], metadata=metadata or {}
    )
    return user(model, data, num_data_points=5), raw


def test_user_plot_shows_denormalised_samples_with_labels(tmp_path: Path) -> None:
    u, raw = _plot_user({"mean": (MEAN,), "std": (STD,), "class_names": ("zero", "one", "two")})
    _, true = u.compute_local_updates(payload(u.model))
    fig = u.plot(true, print_labels=True, path=tmp_path / "u.png")
    assert len(fig.axes) == 9  # ceil(sqrt(5))^2 panels, as the original's layout
    shown = np.asarray(fig.axes[1].images[0].get_array())
    np.testing.assert_allclose(shown, raw[1, 0].numpy(), rtol=1e-5, atol=1e-6)
    assert [fig.axes[i].get_title() for i in range(5)] == ["zero", "one", "two", "zero", "one"]
    assert imread(tmp_path / "u.png").shape[:2] == (360, 360)
    assert u.plot(true).axes[0].get_title() == ""  # labels only when asked


def test_user_plot_needs_the_dataset_statistics() -> None:
    u, raw = _plot_user(None)
    _, true = u.compute_local_updates(payload(u.model))
    with pytest.raises(ConfigError, match="mean/std"):
        u.plot(true)
    assert len(u.plot(true, scale=True).axes) == 9  # per-sample min-max needs none
    meta = payload(u.model)
    meta["metadata"].update({"mean": (MEAN,), "std": (STD,)})  # the FL payload carries them
    u.compute_local_updates(meta)
    shown = np.asarray(u.plot(true).axes[0].images[0].get_array())
    np.testing.assert_allclose(shown, raw[0, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_signals_are_drawn_as_lines() -> None:
    fig = comparison_grid(torch.zeros(2, 1, 40), torch.ones(2, 1, 40), mean=MEAN, std=STD)
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[0].lines[0].get_ydata()) == 40
    np.testing.assert_allclose(fig.axes[2].lines[0].get_ydata(), np.full(40, 0.5))  # 1 * 0.2 + 0.3


def test_multiuser_plot_shows_all_sub_users(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    raw = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    data = UserDataSource(
        _normalise(raw), torch.zeros(6, dtype=torch.long), [np.arange(0, 3), np.arange(3, 6)]
    )
    agg = user(model, data, user_type="multiuser_aggregate", user_range=(0, 2), num_data_points=3)
    sent = payload(model)
    sent["metadata"].update({"mean": (MEAN,), "std": (STD,)})
    _, true = agg.compute_local_updates(sent)
    fig = agg.plot(true)
    assert len(fig.axes) == 9
    np.testing.assert_allclose(np.asarray(fig.axes[5].images[0].get_array()), raw[5, 0].numpy(), atol=1e-6)
