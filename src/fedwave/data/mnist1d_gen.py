"""MNIST-1D, generated locally by the PyPI package ``mnist1d`` (its download path is never used).

``mnist1d.data.make_dataset`` draws from NumPy's and Python's *global* generators (it seeds them itself);
we seed it from the run seed and restore both global states afterwards, so loading leaves no trace.
The package's own train/test cut is discarded: the caller makes a stratified split.
"""

from __future__ import annotations

import random

import numpy as np

from fedwave.errors import DatasetUnavailable

INSTALL_HINT = "pip install mnist1d"


def generate_mnist1d(seed: int, num_samples: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``(x, y)``: float64 signals ``(num_samples, 40)`` (centred, unit std overall), int64 labels.

    Args:
        seed: any int; reduced to 32 bits for the package's ``np.random.seed``.
        num_samples: total samples, ``num_samples // 10`` per digit.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise DatasetUnavailable(f"mnist1d cannot be generated: {exc}; {INSTALL_HINT}") from None
    args = get_dataset_args()
    args.seed = int(seed) & 0xFFFFFFFF
    args.num_samples = int(num_samples)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float64)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return x, y
