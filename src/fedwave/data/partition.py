"""Partitioners: split sample indices among users, as pure functions of (labels, num_users, seed, params).

Each method takes ``labels`` (int, shape ``(N,)``), ``num_users`` and a ``numpy.random.Generator`` derived
from ``fedwave.rng.numpy_generator(seed, "partition", method)``, and returns one sorted int64 index array
per user; the arrays are disjoint. Methods are looked up in a registry with their parameters and defaults:

- ``iid``: shuffle, then cut into ``num_users`` parts. ``sizes="equal"`` makes sizes differ by at most
  one; ``sizes="lognormal"`` draws quantity-skewed sizes ``~ LogNormal(0, lognormal_sigma)`` (sigma
  default 1.0; an error with ``sizes="equal"``). Without ``sizes``, giving ``lognormal_sigma`` means
  lognormal, else equal. Lognormal sizes sum to N, each at least one sample. Complete.
- ``dirichlet``: per class, proportions across users ``~ Dir(alpha)`` (small ``alpha``: skewed; large:
  near iid); redrawn (at most ``max_tries`` times) until every user holds ``min_size`` samples. Complete.
- ``shards``: McMahan et al. 2017: sort by label, cut into ``num_users * shards_per_user`` shards of
  near-equal size (sizes differ by at most one), hand each user ``shards_per_user`` of them at random.
  Complete.
- ``unique_class``: each user holds samples of exactly one class. Needs at least as many users as classes
  (the distinct values in ``labels``); users are spread round-robin over classes in a seeded order, and
  users sharing a class split its samples evenly. Complete.
- ``balanced``: every user gets ``min_c floor(n_c / num_users)`` samples of every class; the remainder
  is left out (not complete).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from fedwave.errors import ConfigError
from fedwave.rng import numpy_generator

Parts = list[np.ndarray]
Method = Callable[..., Parts]
_METHODS: dict[str, Method] = {}


def _register(name: str) -> Callable[[Method], Method]:
    def add(fn: Method) -> Method:
        _METHODS[name] = fn
        return fn

    return add


def _sorted_parts(parts: list[np.ndarray]) -> Parts:
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _split_by_sizes(order: np.ndarray, sizes: np.ndarray) -> Parts:
    return _sorted_parts(np.split(order, np.cumsum(sizes)[:-1]))


def _lognormal_sizes(n: int, num_users: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Sizes ``>= 1`` summing to ``n``: one each, the rest in proportion to LogNormal(0, sigma) weights."""
    weights = rng.lognormal(0.0, sigma, size=num_users)
    share = (n - num_users) * weights / weights.sum()
    sizes = np.floor(share).astype(np.int64)
    leftover = (n - num_users) - int(sizes.sum())
    sizes[np.argsort(-(share - sizes), kind="stable")[:leftover]] += 1  # largest remainders
    return sizes + 1


@_register("iid")
def _iid(
    labels: np.ndarray,
    num_users: int,
    rng: np.random.Generator,
    sizes: str | None = None,
    lognormal_sigma: float | None = None,
) -> Parts:
    n = labels.shape[0]
    order = rng.permutation(n)
    if sizes is None:
        sizes = "equal" if lognormal_sigma is None else "lognormal"
    if sizes == "equal":
        if lognormal_sigma is not None:
            raise ConfigError("partition iid: lognormal_sigma applies only with sizes='lognormal'")
        return _sorted_parts(np.array_split(order, num_users))
    if sizes == "lognormal":
        lognormal_sigma = 1.0 if lognormal_sigma is None else lognormal_sigma
        if not lognormal_sigma > 0:
            raise ConfigError(f"partition iid: lognormal_sigma must be > 0, got {lognormal_sigma}")
        return _split_by_sizes(order, _lognormal_sizes(n, num_users, lognormal_sigma, rng))
    raise ConfigError(f"partition iid: sizes must be one of 'equal', 'lognormal', got {sizes!r}")


@_register("dirichlet")
def _dirichlet(
    labels: np.ndarray,
    num_users: int,
    rng: np.random.Generator,
    alpha: float = 0.5,
    min_size: int = 1,
    max_tries: int = 100,
) -> Parts:
    if not alpha > 0:
        raise ConfigError(f"partition dirichlet: alpha must be > 0, got {alpha}")
    if min_size < 0 or min_size * num_users > labels.shape[0]:
        raise ConfigError(
            f"partition dirichlet: min_size must be in 0..N/num_users = {labels.shape[0] // num_users}, "
            f"got {min_size}"
        )
    if max_tries < 1:
        raise ConfigError(f"partition dirichlet: max_tries must be >= 1, got {max_tries}")
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_users)]
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            p = rng.dirichlet(np.full(num_users, alpha))
            if not np.all(np.isfinite(p)):  # underflow at tiny alpha: count as a failed draw
                break
            cuts = np.floor(np.cumsum(p)[:-1] * members.size).astype(np.int64)
            for user, chunk in enumerate(np.split(members, cuts)):
                parts[user].append(chunk)
        else:
            out = _sorted_parts([np.concatenate(p) if p else np.empty(0, np.int64) for p in parts])
            if min(p.size for p in out) >= min_size:
                return out
    raise ConfigError(
        f"partition dirichlet: no draw in max_tries={max_tries} gave every one of {num_users} users "
        f"min_size={min_size} samples at alpha={alpha}; "
        "raise alpha or max_tries, or lower min_size or num_users"
    )


@_register("shards")
def _shards(labels: np.ndarray, num_users: int, rng: np.random.Generator, shards_per_user: int = 2) -> Parts:
    num_shards = num_users * shards_per_user
    if shards_per_user < 1 or num_shards > labels.shape[0]:
        raise ConfigError(
            f"partition shards: shards_per_user must be in 1..N/num_users = {labels.shape[0] // num_users}, "
            f"got {shards_per_user}"
        )
    # shuffle first so that the stable sort by label orders each class at random
    shuffled = rng.permutation(labels.shape[0])
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    shards = np.array_split(by_label, num_shards)
    deal = rng.permutation(num_shards).reshape(num_users, shards_per_user)
    return _sorted_parts([np.concatenate([shards[s] for s in row]) for row in deal])


@_register("unique_class")
def _unique_class(labels: np.ndarray, num_users: int, rng: np.random.Generator) -> Parts:
    classes = np.unique(labels)
    if num_users < classes.size:
        raise ConfigError(
            f"partition unique_class: num_users must be >= the number of classes ({classes.size}) so that "
            f"every sample is assigned, got {num_users}"
        )
    users = rng.permutation(num_users)
    parts: list[np.ndarray] = [np.empty(0, np.int64)] * num_users
    for k, c in enumerate(classes):
        sharing = users[k :: classes.size]
        members = rng.permutation(np.flatnonzero(labels == c))
        if members.size < sharing.size:
            raise ConfigError(
                f"partition unique_class: class {c} has {members.size} samples for {sharing.size} users; "
                "lower num_users"
            )
        for user, chunk in zip(sharing, np.array_split(members, sharing.size)):
            parts[int(user)] = chunk
    return _sorted_parts(parts)


@_register("balanced")
def _balanced(labels: np.ndarray, num_users: int, rng: np.random.Generator) -> Parts:
    classes, counts = np.unique(labels, return_counts=True)
    per_class = int(counts.min()) // num_users
    if per_class == 0:
        c = classes[int(np.argmin(counts))]
        raise ConfigError(
            f"partition balanced: class {c} has {counts.min()} samples, fewer than num_users={num_users}"
        )
    parts: list[list[np.ndarray]] = [[] for _ in range(num_users)]
    for c in classes:
        members = rng.permutation(np.flatnonzero(labels == c))[: per_class * num_users]
        for user, chunk in enumerate(members.reshape(num_users, per_class)):
            parts[user].append(chunk)
    return _sorted_parts([np.concatenate(p) for p in parts])


def partitioner_names() -> list[str]:
    """The methods :func:`partition` accepts, sorted."""
    return sorted(_METHODS)


def partitioner_params(method: str) -> dict[str, Any]:
    """The parameters of ``method`` with their defaults, e.g. ``{"alpha": 0.5, "min_size": 1, ...}``."""
    fn = _lookup(method)
    return {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[3:]}


def _lookup(method: str) -> Method:
    if method not in _METHODS:
        raise ConfigError(
            f"unknown partition method {method!r}; valid methods: {', '.join(partitioner_names())}"
        )
    return _METHODS[method]


def _annotation(fn: Method, name: str) -> str:
    return str(inspect.signature(fn).parameters[name].annotation)


def _check_type(method: str, name: str, value: Any, annotation: str) -> None:
    """Reject a parameter value whose type does not fit the annotation (``int``, ``float``, ``str``)."""
    if value is None and "None" in annotation:
        return
    is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
    ok = {
        "int": is_int,
        "float": is_int or isinstance(value, float | np.floating),
        "str": isinstance(value, str),
    }[annotation.split(" | ")[0]]
    if not ok:
        raise ConfigError(f"partition {method}: {name} must be {annotation}, got {value!r}")


def partition(
    method: str, labels: np.ndarray, num_users: int, *, seed: int, **params: Any
) -> list[np.ndarray]:
    """Split the indices ``0..N-1`` of ``labels`` among ``num_users`` users.

    Args:
        method: one of :func:`partitioner_names` (see the module docstring).
        labels: non-negative int class labels, shape ``(N,)``.
        num_users: number of users, ``1 <= num_users <= N``.
        seed: the run seed; the generator is ``numpy_generator(seed, "partition", method)``.
        params: the method's parameters (:func:`partitioner_params`).

    Returns:
        ``num_users`` disjoint, sorted int64 index arrays; user ``u``'s samples are ``labels[parts[u]]``.

    Raises:
        ConfigError: unknown method or parameter, or an out-of-range value (named in the message).
    """
    fn = _lookup(method)
    allowed = partitioner_params(method)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"partition {method}: unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    for name, value in params.items():
        _check_type(method, name, value, _annotation(fn, name))
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise ConfigError(f"partition: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ConfigError(f"partition: labels must be >= 0, got min {labels.min()}")
    if isinstance(num_users, bool) or not isinstance(num_users, int | np.integer) or num_users < 1:
        raise ConfigError(f"partition: num_users must be an int >= 1, got {num_users!r}")
    if num_users > labels.size:
        raise ConfigError(f"partition: num_users={num_users} exceeds the {labels.size} samples")
    return fn(labels, int(num_users), numpy_generator(seed, "partition", method), **params)


def label_histogram(parts: list[np.ndarray], labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-user class counts, int64 of shape ``(num_users, num_classes)``."""
    labels = np.asarray(labels)
    hist = np.zeros((len(parts), num_classes), dtype=np.int64)
    for user, idx in enumerate(parts):
        hist[user] = np.bincount(labels[np.asarray(idx, dtype=np.int64)], minlength=num_classes)[:num_classes]
    return hist


def format_histogram(hist: np.ndarray, max_rows: int = 50) -> str:
    """A plain-text table: one row per user (``user``, ``n``, counts per class), then a summary line.

    At most ``max_rows`` user rows are shown; the rest are counted in a ``...`` line.
    """
    hist = np.asarray(hist, dtype=np.int64)
    num_users, num_classes = hist.shape
    sizes = hist.sum(axis=1)
    header = ["user", "n", *(f"c{c}" for c in range(num_classes))]
    rows = [[str(u), str(sizes[u]), *(str(v) for v in hist[u])] for u in range(min(num_users, max_rows))]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in [header, *rows]]
    if num_users > max_rows:
        lines.append(f"... {num_users - max_rows} more users")
    if num_users:
        lines.append(
            f"{num_users} users, {int(sizes.sum())} samples; per user min {sizes.min()}, "
            f"median {float(np.median(sizes)):g}, max {sizes.max()}; "
            f"classes per user: mean {float((hist > 0).sum(axis=1).mean()):.2f}"
        )
    return "\n".join(lines)
