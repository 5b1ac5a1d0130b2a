"""What the contract suites share: the error they raise and how they run a list of rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class ContractError(AssertionError):
    """A plug-in broke one or more rules of its family's contract; the message lists each, in words."""


#: A rule: its name, and a check raising :class:`ContractError` (or AssertionError) when broken.
Rule = tuple[str, Callable[[T], None]]


def run_rules(subject: T, rules: Sequence[tuple[str, Callable[[T], None]]], what: str) -> list[str]:
    """Run every rule on ``subject``; return the names passed, or raise one error naming all failures.

    An unexpected exception inside a rule counts as a failure of that rule (with its type and message).
    """
    failures: list[str] = []
    for name, check in rules:
        try:
            check(subject)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
        except Exception as exc:
            failures.append(f"{name}: raised {type(exc).__name__}: {exc}")
    if failures:
        lines = "\n  - ".join(failures)
        raise ContractError(f"{what} breaks {len(failures)} rule(s) of the contract:\n  - {lines}")
    return [name for name, _ in rules]


def fail(message: str) -> None:
    """Raise :class:`ContractError` with ``message``."""
    raise ContractError(message)
