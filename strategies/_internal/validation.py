"""Argument checks for strategy builders, run when the strategy is built.

Messages echo the value and say what would be valid, as Hypothesis does.
"""

from __future__ import annotations

from hypothesis.errors import InvalidArgument


def check_bounded_int(name: str, value: object, *, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}={value!r} must be an integer")
    if value < low:
        raise InvalidArgument(f"Cannot have {name}={value!r} < {low}")
    if high is not None and value > high:
        raise InvalidArgument(f"Cannot have {name}={value!r} > {high}")
