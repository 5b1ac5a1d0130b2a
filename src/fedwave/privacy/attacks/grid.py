"""The picture grid of an attack run: per trial, the true samples above their reconstructions (PNG)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

MAX_TRIALS_SHOWN = 8


def _show(ax: plt.Axes, sample: torch.Tensor) -> None:
    x = sample.detach().float().clamp(0.0, 1.0)
    if x.dim() == 2:  # (C, L): 1-D signals as curves
        for ch in x:
            ax.plot(ch.numpy(), lw=1.0)
        ax.set_ylim(-0.05, 1.05)
    elif x.shape[0] == 1:
        ax.imshow(x[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(x.permute(1, 2, 0).numpy(), vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def write_grid(
    path: Path,
    true: Sequence[torch.Tensor],
    recon: Sequence[torch.Tensor],
    captions: Sequence[Sequence[str]] | None = None,
    title: str = "",
) -> Path:
    """Write a PNG with two rows per trial: true samples (top) over matched reconstructions (bottom).

    Args:
        path: the PNG file to write.
        true, recon: per trial, samples ``(B, *input_shape)`` in the raw [0, 1] range, recon matched to true.
        captions: per trial, one caption per sample shown under the reconstruction (e.g. PSNR).
        title: figure title.
    """
    trials = min(len(true), MAX_TRIALS_SHOWN)
    cols = max(int(t.shape[0]) for t in true[:trials])
    fig, axes = plt.subplots(
        2 * trials, cols, figsize=(max(4.0, 1.2 * cols + 0.8), 2.5 * trials + 0.8), squeeze=False
    )
    for t in range(trials):
        for j in range(cols):
            top, bottom = axes[2 * t][j], axes[2 * t + 1][j]
            if j < true[t].shape[0]:
                _show(top, true[t][j])
                _show(bottom, recon[t][j])
                if captions is not None:
                    bottom.set_xlabel(captions[t][j], fontsize=7)
            else:
                top.axis("off")
                bottom.axis("off")
        axes[2 * t][0].set_ylabel(f"trial {t}\ntrue", fontsize=7)
        axes[2 * t + 1][0].set_ylabel("reconstructed", fontsize=7)
    if title:
        fig.suptitle(textwrap.fill(title, 60), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
