"""The picture grid of an attack: true samples above their matched reconstructions, as PNG bytes.

Drawn by :func:`fedwave.users.plot.comparison_grid` (the one grid implementation): each trial's
``attack.batch`` samples stay side by side, trials follow each other along the row and wrap into further
row pairs. A true sample is titled with its label, its reconstruction with the predicted label and a
caption (its PSNR). At most :data:`MAX_TRIALS_SHOWN` trials are drawn; the metrics cover all of them.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import torch

from fedwave.users.plot import comparison_grid

MAX_TRIALS_SHOWN = 8
#: Samples per row pair at most (a trial wider than this wraps).
MAX_COLUMNS = 16
_DPI = 100


def grid_png(
    true: Sequence[torch.Tensor],
    recon: Sequence[torch.Tensor],
    *,
    true_labels: Sequence[torch.Tensor],
    recon_labels: Sequence[torch.Tensor],
    captions: Sequence[Sequence[str]],
    title: str = "",
) -> bytes:
    """PNG bytes of the grid of the first :data:`MAX_TRIALS_SHOWN` trials.

    Args:
        true, recon: per trial, samples ``(B, *input_shape)`` in the raw [0, 1] range, ``recon[t][j]``
            matched to ``true[t][j]``.
        true_labels, recon_labels: per trial, the true labels and the matched reconstructions' labels.
        captions: per trial, one caption per sample (shown under the reconstruction's label).
        title: figure title (wrapped to the figure's width).
    """
    shown = min(len(true), MAX_TRIALS_SHOWN)
    batch = int(true[0].shape[0])
    cols = min(MAX_COLUMNS, batch * max(1, min(shown, MAX_COLUMNS // max(batch, 1))))
    fig = comparison_grid(
        torch.cat(list(true[:shown])),
        torch.cat(list(recon[:shown])),
        mean=0.0,
        std=1.0,
        true_labels=torch.cat(list(true_labels[:shown])),
        reconstructed_labels=torch.cat(list(recon_labels[:shown])),
        captions=[c for trial in captions[:shown] for c in trial],
        max_columns=cols,
    )
    if title:
        width_in = float(fig.get_size_inches()[0])
        fig.suptitle(textwrap.fill(title, max(24, int(width_in * 11))), fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()
