"""The CIFAR-10 "python version": pickled batches ``data_batch_1..5``, ``test_batch`` and ``batches.meta``.

Each batch is a pickled dict with ``data``, a uint8 array of shape ``(n, 3072)`` (1024 red, then 1024
green, then 1024 blue values of a 32x32 image, row-major), and ``labels``, a list of n ints in 0..9.
``batches.meta`` holds ``label_names``. Keys may be bytes (the original Python 2 pickles) or str.

Unpickling is restricted to the few NumPy globals such arrays need, so a hostile file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from fedwave.errors import DatasetUnavailable

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
SUBDIR = "cifar-10-batches-py"
IMAGE_SHAPE = (3, 32, 32)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
CifarArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def _text(key: Any) -> Any:
    return key.decode("latin1") if isinstance(key, bytes) else key


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            obj = _RestrictedUnpickler(fh, encoding="bytes").load()
    except OSError as exc:
        raise DatasetUnavailable(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # any unpickling failure: truncated, foreign or hostile file
        raise DatasetUnavailable(
            f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, dict):
        raise DatasetUnavailable(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {str(_text(k)): v for k, v in obj.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DatasetUnavailable(f"{path}: missing key(s) {missing}; found {sorted(batch)}")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != int(np.prod(IMAGE_SHAPE)):
        raise DatasetUnavailable(
            f"{path}: 'data' must be uint8 of shape (n, 3072), got {data.dtype} {data.shape}"
        )
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetUnavailable(f"{path}: 'labels' are not integers ({exc})") from None
    if labels.shape != (data.shape[0],):
        raise DatasetUnavailable(f"{path}: {labels.shape} labels for {data.shape[0]} images")
    return data.reshape((-1, *IMAGE_SHAPE)), labels


def find_cifar_dir(root: str | Path) -> Path | None:
    """``root`` or ``root/cifar-10-batches-py``, whichever holds ``test_batch`` and the train batches."""
    for directory in (Path(root), Path(root) / SUBDIR):
        if all((directory / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH)):
            return directory
    return None


def load_cifar10(root: str | Path) -> CifarArrays:
    """Load CIFAR-10 from ``root``: uint8 images ``(N, 3, 32, 32)``, int64 labels, train then test, classes.

    Raises:
        DatasetUnavailable: the batches are missing or malformed.
    """
    directory = find_cifar_dir(root)
    if directory is None:
        names = ", ".join((*TRAIN_BATCHES, TEST_BATCH))
        raise DatasetUnavailable(
            f"no CIFAR-10 python batches in {root} or {Path(root) / SUBDIR} (need {names}); "
            "pass data.root=DIR holding the CIFAR-10 python batches (the 'cifar-10-python.tar.gz' archive, "
            "extracted)"
        )
    train = [_read_batch(directory / name) for name in TRAIN_BATCHES]
    x_test, y_test = _read_batch(directory / TEST_BATCH)
    classes: tuple[str, ...] = CIFAR10_CLASSES
    if (directory / META).is_file():
        meta = _unpickle(directory / META)
        if "label_names" not in meta:
            raise DatasetUnavailable(f"{directory / META}: missing key 'label_names'; found {sorted(meta)}")
        classes = tuple(str(_text(n)) for n in meta["label_names"])
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, classes
