"""``is_finite``: the sum shortcut lets no NaN or infinity through and rejects no finite values."""

from __future__ import annotations

import pytest
import torch

from fedwave.server import is_finite

BIG = 3.0e38  # two of them overflow a float32 sum although each is finite


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_one_non_finite_entry_anywhere_is_found(bad: float, dtype: torch.dtype) -> None:
    for pos in (0, 17, 999):
        t = torch.full((1000,), 0.5, dtype=dtype)
        t[pos] = bad
        assert not is_finite([torch.zeros(3), t])


def test_opposite_infinities_whose_sum_is_nan_are_found() -> None:
    assert not is_finite([torch.tensor([float("inf"), 1.0, float("-inf")])])


def test_finite_entries_whose_sum_overflows_are_accepted() -> None:
    t = torch.full((8,), BIG)
    assert not torch.isfinite(t.sum())  # the shortcut alone would reject this update
    assert is_finite([t, -t])
    assert is_finite([torch.full((4,), 60000.0, dtype=torch.float16)])  # fp16 sum overflows at 65504


def test_integer_and_empty_tensors_do_not_count() -> None:
    assert is_finite([torch.tensor([2**62, -(2**62)], dtype=torch.int64), torch.empty(0), torch.empty(0, 5)])
    assert is_finite([])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_back_to_back_tensors_of_one_payload_are_checked_as_one(bad: float) -> None:
    """A decoded payload's tensors are views of one buffer (``flat_view``): a bad entry in any of them,
    the last element of the last one included, is still found."""
    from fedwave.server.aggregate import flat_view

    for pos in (0, 99, 150, 299):
        flat = torch.full((300,), 0.25)
        update = list(torch.split(flat, [100, 50, 150]))
        assert flat_view(update) is not None
        flat[pos] = bad
        assert not is_finite(update)
    flat = torch.full((300,), BIG)
    flat[150:] = -BIG
    assert is_finite(list(torch.split(flat, [100, 50, 150])))  # overflowing sum, finite entries
