"""Pictures of user data: true and reconstructed samples, de-normalised with the dataset's mean/std.

Headless: figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never registered with
``pyplot`` (no display, no global figure list, safe in loops and worker processes).

- :func:`to_display`: normalised tensors -> values in [0, 1] (``x * std + mean``, clamped; or per-image
  min-max with ``scale``).
- :func:`image_grid`: a square grid of samples (the original framework's ``user.plot`` layout).
- :func:`comparison_grid` / :func:`save_comparison_png`: a true row over a reconstructed row, wrapped every
  ``max_columns`` samples; usable without a user object.

Samples are images ``(C, H, W)`` with C = 1 (grey) or 3 (RGB), or 1-D signals ``(C, L)`` (drawn as lines).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fedwave.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_PANEL_INCHES = 1.2
_DPI = 100


def _channel_stats(values: Sequence[float] | float, channels: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    if t.numel() not in (1, channels):
        raise ConfigError(
            f"{name} has {t.numel()} entries; the data has {channels} channels (give 1 or {channels})"
        )
    return t.expand(channels) if t.numel() == 1 else t


def to_display(
    samples: torch.Tensor, mean: Sequence[float] | float, std: Sequence[float] | float, *, scale: bool = False
) -> torch.Tensor:
    """Samples ``(N, C, ...)`` as float32 values in [0, 1] on the CPU.

    Args:
        samples: normalised data, ``x = (x_raw - mean) / std`` per channel.
        mean, std: per-channel statistics of the dataset (one value or one per channel).
        scale: instead of undoing the normalisation, stretch each sample's channel to its own min..max
            (a constant channel shows as 0).
    """
    if samples.dim() < 3:
        raise ConfigError(f"expected samples of shape (N, C, ...), got {tuple(samples.shape)}")
    x = samples.detach().to("cpu", torch.float32)
    dims = tuple(range(2, x.dim()))
    if scale:
        lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
        return ((x - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    c = x.shape[1]
    view = (1, c) + (1,) * len(dims)
    m = _channel_stats(mean, c, "mean").view(view)
    s = _channel_stats(std, c, "std").view(view)
    return (x * s + m).clamp(0, 1)


def _label_text(label: Any, class_names: Sequence[str] | None) -> str:
    k = int(label)
    return str(class_names[k]) if class_names is not None and 0 <= k < len(class_names) else str(k)


def _title(labels: torch.Tensor | Sequence[int] | None, i: int, names: Sequence[str] | None) -> str | None:
    return _label_text(labels[i], names) if labels is not None else None


def _draw(ax: Axes, sample: torch.Tensor, title: str | None) -> None:
    if sample.dim() == 3:
        c = sample.shape[0]
        if c == 1:
            ax.imshow(sample[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        elif c == 3:
            ax.imshow(sample.permute(1, 2, 0).numpy(), interpolation="nearest")
        else:
            raise ConfigError(f"cannot draw images with {c} channels (expected 1 or 3)")
        ax.axis("off")
    elif sample.dim() == 2:
        for channel in sample:
            ax.plot(channel.numpy(), linewidth=1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        raise ConfigError(
            f"cannot draw samples of shape {tuple(sample.shape)} (expected (C, H, W) or (C, L))"
        )
    if title is not None:
        ax.set_title(title, fontsize=8)


def _figure(rows: int, cols: int, wide: bool) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = _PANEL_INCHES * (4 if wide else 1)
    fig = Figure(figsize=(cols * size, rows * size), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def image_grid(
    samples: torch.Tensor,
    *,
    mean: Sequence[float] | float,
    std: Sequence[float] | float,
    scale: bool = False,
    labels: torch.Tensor | Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """A ceil(sqrt(N)) x ceil(sqrt(N)) grid of the samples; ``labels`` (if given) title each panel."""
    shown = to_display(samples, mean, std, scale=scale)
    n = shown.shape[0]
    side = max(1, math.ceil(math.sqrt(n)))
    fig, axes = _figure(side, side, wide=shown.dim() == 4 and shown.shape[-1] > 150)
    for i, ax in enumerate(axes):
        if i < n:
            _draw(ax, shown[i], _title(labels, i, class_names))
        else:
            ax.axis("off")
    return fig


def comparison_grid(
    true: torch.Tensor,
    reconstructed: torch.Tensor,
    *,
    mean: Sequence[float] | float,
    std: Sequence[float] | float,
    scale: bool = False,
    true_labels: torch.Tensor | Sequence[int] | None = None,
    reconstructed_labels: torch.Tensor | Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    max_columns: int = 16,
    captions: Sequence[str] | None = None,
) -> Figure:
    """True samples in one row, their reconstructions in the row below (sample i over sample i).

    More than ``max_columns`` samples wrap into further row pairs. ``captions`` (one per sample) add a
    line to each reconstruction's title (e.g. its PSNR).
    """
    if true.shape[1:] != reconstructed.shape[1:] or true.shape[0] != reconstructed.shape[0]:
        raise ConfigError(
            f"true data {tuple(true.shape)} and reconstruction {tuple(reconstructed.shape)} differ in shape"
        )
    if max_columns < 1:
        raise ConfigError(f"max_columns must be >= 1, got {max_columns}")
    if captions is not None and len(captions) != true.shape[0]:
        raise ConfigError(f"{len(captions)} captions given for {true.shape[0]} samples")
    top = to_display(true, mean, std, scale=scale)
    bottom = to_display(reconstructed, mean, std, scale=scale)
    n = top.shape[0]
    cols = max(1, min(n, max_columns))
    pairs = max(1, math.ceil(n / cols))
    fig, axes = _figure(2 * pairs, cols, wide=top.dim() == 4 and top.shape[-1] > 150)
    for i in range(pairs * cols):
        row, col = divmod(i, cols)
        ax_true, ax_rec = axes[(2 * row) * cols + col], axes[(2 * row + 1) * cols + col]
        if i >= n:
            ax_true.axis("off")
            ax_rec.axis("off")
            continue
        t_title = _label_text(true_labels[i], class_names) if true_labels is not None else None
        r_title = (
            _label_text(reconstructed_labels[i], class_names) if reconstructed_labels is not None else None
        )
        if captions is not None:
            r_title = captions[i] if r_title is None else f"{r_title}\n{captions[i]}"
        _draw(ax_true, top[i], t_title)
        _draw(ax_rec, bottom[i], r_title)
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (parent folders created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=_DPI, metadata={"Software": None})
    return out


def save_comparison_png(
    path: str | Path,
    true: torch.Tensor,
    reconstructed: torch.Tensor,
    *,
    mean: Sequence[float] | float,
    std: Sequence[float] | float,
    **kwargs: Any,
) -> Path:
    """Write the :func:`comparison_grid` of ``true`` over ``reconstructed`` to ``path`` (PNG)."""
    return save_png(comparison_grid(true, reconstructed, mean=mean, std=std, **kwargs), path)
