"""Leakage metrics: how close reconstructions are to the true samples (privacy.md, "Metrics").

Samples are compared in the raw data range [0, 1] (normalisation undone with the dataset mean/std).
Reconstructions are first matched to true samples by an optimal assignment (Hungarian method,
``scipy.optimize.linear_sum_assignment`` on the per-pair MSE), since an attack's output order is
arbitrary. Then per matched pair:

- MSE: mean squared error over all values.
- PSNR: ``10 log10(1 / MSE)`` dB (data range 1); ``inf`` for an exact reconstruction.
- SSIM: Gaussian-window SSIM from ``pytorch-msssim`` (K1 = 0.01, K2 = 0.03, sigma 1.5 px). The standard
  window is 11 px; images smaller than that (8x8 digits) use the largest odd window that fits
  (7 px for 8x8: the sigma-1.5 Gaussian truncated at +-3 px = 2 sigma) instead of skipping the smoothing.
  One-dimensional samples (``(C, L)``) are scored as images of two identical rows with smoothing along L
  only, which equals 1-D Gaussian SSIM. Channels are averaged.
- label accuracy: whether the matched reconstruction's label equals the true label.

Summaries: median and best (max PSNR/SSIM, min MSE) over samples, and the label accuracy (mean).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pytorch_msssim import ssim as _ms_ssim
from scipy.optimize import linear_sum_assignment

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def pairwise_mse(recon: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``(N_rec, N_true)`` mean squared errors between all pairs (float64)."""
    a = recon.reshape(recon.shape[0], -1).double()
    b = true.reshape(true.shape[0], -1).double()
    return ((a[:, None, :] - b[None, :, :]) ** 2).mean(dim=2)


def match(recon: torch.Tensor, true: torch.Tensor) -> np.ndarray:
    """``order`` such that ``recon[order[i]]`` is matched to ``true[i]`` (minimum total MSE).

    Raises:
        ValueError: different numbers of samples or sample shapes.
    """
    if recon.shape != true.shape:
        raise ValueError(f"reconstruction shape {tuple(recon.shape)} differs from true {tuple(true.shape)}")
    cost = pairwise_mse(recon, true).numpy()
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(cols), dtype=np.int64)
    order[cols] = rows
    return order


def psnr(mse: float, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for a mean squared error (``inf`` when ``mse == 0``)."""
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim_window(spatial: tuple[int, ...]) -> int:
    """The SSIM window: 11 px, or the largest odd size that fits the smallest spatial side."""
    side = min(spatial)
    if side >= SSIM_WINDOW:
        return SSIM_WINDOW
    return max(1, side if side % 2 == 1 else side - 1)


def ssim(recon: torch.Tensor, true: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-sample SSIM of ``(N, C, H, W)`` or ``(N, C, L)`` samples in ``[0, data_range]`` (float64)."""
    x, y = recon.double(), true.double()
    if x.dim() == 3:  # 1-D signals: two identical rows, smoothing along L only
        x, y = torch.stack([x, x], dim=2), torch.stack([y, y], dim=2)
        spatial: tuple[int, ...] = (x.shape[3],)
    elif x.dim() == 4:
        spatial = tuple(x.shape[2:])
    else:
        raise ValueError(f"SSIM takes (N, C, H, W) or (N, C, L) samples, got shape {tuple(recon.shape)}")
    win = ssim_window(spatial)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping Gaussian Smoothing")
        out: torch.Tensor = _ms_ssim(
            x, y, data_range=data_range, size_average=False, win_size=win, win_sigma=SSIM_SIGMA
        )
    return out


@dataclass
class SampleMetrics:
    """Metrics of one reconstructed sample matched to true sample ``sample``."""

    sample: int
    label: int
    predicted_label: int
    label_correct: bool
    mse: float
    psnr: float
    ssim: float


def sample_metrics(
    recon: torch.Tensor,
    recon_labels: torch.Tensor,
    true: torch.Tensor,
    true_labels: torch.Tensor,
) -> list[SampleMetrics]:
    """Match reconstructions to true samples, then score each pair (inputs in the [0, 1] data range)."""
    order = match(recon, true)
    matched = recon[torch.as_tensor(order)]
    mse = ((matched.double() - true.double()) ** 2).reshape(true.shape[0], -1).mean(dim=1)
    scores = ssim(matched, true)
    out = []
    for i in range(true.shape[0]):
        pred = int(recon_labels[int(order[i])])
        lab = int(true_labels[i])
        out.append(
            SampleMetrics(i, lab, pred, pred == lab, float(mse[i]), psnr(float(mse[i])), float(scores[i]))
        )
    return out


def summarize(samples: list[SampleMetrics]) -> dict[str, Any]:
    """Median and best PSNR, SSIM and MSE, and the label accuracy over ``samples``."""
    if not samples:
        raise ValueError("no samples to summarise")
    p = np.array([s.psnr for s in samples])
    q = np.array([s.ssim for s in samples])
    m = np.array([s.mse for s in samples])
    return {
        "samples": len(samples),
        "psnr_median": float(np.median(p)),
        "psnr_best": float(np.max(p)),
        "ssim_median": float(np.median(q)),
        "ssim_best": float(np.max(q)),
        "mse_median": float(np.median(m)),
        "mse_best": float(np.min(m)),
        "label_accuracy": float(np.mean([s.label_correct for s in samples])),
    }
