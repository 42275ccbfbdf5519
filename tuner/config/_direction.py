"""The one place the sign for ``goal: maximize`` is applied: searchers, schedulers' rungs and the
best rule compare minimised values; a maximised metric is negated on the way in."""

from __future__ import annotations

from typing import TypeVar

Value = TypeVar("Value")  # a float, or an array or Series of them


def sign(maximize: bool) -> float:
    """``-1`` for a maximised metric, ``1`` for a minimised one."""
    return -1.0 if maximize else 1.0


def minimised(value: Value, maximize: bool) -> Value:
    """``value`` as a searcher sees it: lower is better."""
    return value if not maximize else -value  # type: ignore[operator]


def better(a: float, b: float, maximize: bool) -> bool:
    """Whether ``a`` is strictly better than ``b``."""
    return minimised(a, maximize) < minimised(b, maximize)
