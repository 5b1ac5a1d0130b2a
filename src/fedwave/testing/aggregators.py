"""The aggregator contract: the rules every :class:`~fedwave.server.aggregators.Aggregator` meets.

Rules:

* ``shapes``: the aggregate has the shapes and dtypes of the updates, all finite; inputs are unchanged.
* ``consensus``: when every update is the same, the aggregate is that update (relative error 1e-6).
* ``permutation``: the order of the updates (and their weights) does not change the aggregate.
* ``robust`` (only for a rule claiming ``robust``): one update of norm 1e6 among ten does not move the
  aggregate further from the honest mean than twice the honest updates' largest distance to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from fedwave.server.aggregators import Aggregator
from fedwave.testing.common import fail, run_rules

AggregatorSource = Aggregator | str


def _updates(n: int, seed: int) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    center = [torch.randn(4, 3, generator=g), torch.randn(5, generator=g)]
    return [[c + 0.5 * torch.randn(c.shape, generator=g) for c in center] for _ in range(n)]


def _flat(update: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for t in update])


def check_shapes(agg: Aggregator) -> None:
    """See the module docstring."""
    ups = _updates(7, 1)
    before = [[t.clone() for t in u] for u in ups]
    out = agg.aggregate(ups, [1.0 + i for i in range(7)])
    if [tuple(t.shape) for t in out] != [tuple(t.shape) for t in ups[0]]:
        got, want = [tuple(t.shape) for t in out], [tuple(t.shape) for t in ups[0]]
        fail(f"aggregate has shapes {got}, updates {want}")
    if [t.dtype for t in out] != [t.dtype for t in ups[0]]:
        fail(f"aggregate has dtypes {[t.dtype for t in out]}, updates {[t.dtype for t in ups[0]]}")
    if not all(bool(torch.isfinite(t).all()) for t in out):
        fail("the aggregate of finite updates is not finite")
    if any(not torch.equal(a, b) for u, v in zip(ups, before) for a, b in zip(u, v)):
        fail("aggregate modified the updates it was given")


def check_consensus(agg: Aggregator) -> None:
    """See the module docstring."""
    same = _updates(1, 2)[0]
    out = _flat(agg.aggregate([[t.clone() for t in same] for _ in range(7)]))
    err = float((out - _flat(same)).norm() / _flat(same).norm())
    if not err <= 1e-6:
        fail(f"seven equal updates aggregate to something else (relative error {err:.3g})")


def check_permutation(agg: Aggregator) -> None:
    """See the module docstring."""
    ups, w = _updates(7, 3), [1.0, 2.0, 3.0, 1.0, 5.0, 2.0, 4.0]
    order = [3, 0, 6, 2, 5, 1, 4]
    a = _flat(agg.aggregate(ups, w))
    b = _flat(agg.aggregate([ups[i] for i in order], [w[i] for i in order]))
    err = float((a - b).norm() / a.norm().clamp_min(1e-12))
    if not err <= 1e-5:
        fail(f"reordering the updates changes the aggregate (relative difference {err:.3g})")


def check_robust(agg: Aggregator) -> None:
    """See the module docstring."""
    if not agg.robust:
        return
    honest = _updates(9, 4)
    flat = torch.stack([_flat(u) for u in honest])
    mean = flat.mean(dim=0)
    radius = float((flat - mean).norm(dim=1).max())
    outlier = [torch.full_like(t, 1e6 / 17**0.5) for t in honest[0]]
    out = _flat(agg.aggregate([*honest, outlier]))
    moved = float((out - mean).norm())
    if not moved <= 2 * radius:
        fail(
            f"the rule claims robust but one outlier of norm 1e6 among ten updates moved the aggregate "
            f"{moved:.3g} from the honest mean (the honest updates lie within {radius:.3g} of it)"
        )


def make_aggregator(source: AggregatorSource) -> Aggregator:
    """An aggregator from an :class:`Aggregator` or a spec (``"median"``, ``"mypkg.rules:my_rule"``)."""
    from fedwave.server.aggregators import get_aggregator

    return source if isinstance(source, Aggregator) else get_aggregator(source)


def check_aggregator(source: AggregatorSource) -> list[str]:
    """Run the aggregator contract (module docstring) on an aggregator or spec; return the rules passed.

    Raises:
        ContractError: one message listing every rule broken, each in words.
    """
    agg = make_aggregator(source)
    rules: list[tuple[str, Callable[[Aggregator], None]]] = [
        ("shapes", check_shapes),
        ("consensus", check_consensus),
        ("permutation", check_permutation),
        ("robust", check_robust),
    ]
    return run_rules(agg, rules, f"aggregator {agg.spec!r}")


class AggregatorContract:
    """Subclass as ``TestMyRule(AggregatorContract)`` and set :attr:`aggregator`; pytest runs each rule."""

    #: The aggregator under test: an :class:`Aggregator` or a spec string.
    aggregator: ClassVar[Any] = None

    def _agg(self) -> Aggregator:
        if self.aggregator is None:
            raise TypeError(f"{type(self).__name__}: set the class attribute aggregator = ...")
        return make_aggregator(self.aggregator)

    def test_shapes(self) -> None:
        """Rule ``shapes``."""
        check_shapes(self._agg())

    def test_consensus(self) -> None:
        """Rule ``consensus``."""
        check_consensus(self._agg())

    def test_permutation(self) -> None:
        """Rule ``permutation``."""
        check_permutation(self._agg())

    def test_robust(self) -> None:
        """Rule ``robust`` (when the rule claims it)."""
        check_robust(self._agg())
