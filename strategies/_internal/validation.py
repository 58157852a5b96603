"""Argument checks for strategy builders, run when the strategy is built.

Messages echo the value and say what would be valid, as Hypothesis does;
they raise ``hypothesis.errors.InvalidArgument``. Also the registry that
``strategies/__init__.py`` checks ``__all__`` against.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from hypothesis.errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., object])

#: Names of every public strategy, filled by :func:`public_strategy`.
PUBLIC_STRATEGIES: set[str] = set()


def public_strategy(func: F) -> F:
    """Mark ``func`` as a public strategy: ``strategies.__all__`` must export it."""
    PUBLIC_STRATEGIES.add(func.__name__)
    return func


def check_bounded_int(name: str, value: object, *, low: int, high: int | None = None) -> int:
    """``value`` as an int within ``low..high``, or InvalidArgument saying why not."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}={value!r} must be an integer")
    if value < low:
        raise InvalidArgument(f"Cannot have {name}={value!r} < {low}")
    if high is not None and value > high:
        raise InvalidArgument(f"Cannot have {name}={value!r} > {high}")
    return value


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool, or InvalidArgument."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name}={value!r} must be True or False")
    return value


def check_names(name: str, value: object, choices: tuple[str, ...], *,
                allow_empty: bool = False) -> tuple[str, ...]:
    """The allowed names, in the canonical (simplest first) order of ``choices``.

    Whatever order the caller lists them in, shrinking walks toward the
    simplest allowed name.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Collection):
        raise InvalidArgument(f"{name}={value!r} must be a collection of names, "
                              f"e.g. {name}={choices[:1]!r}")
    unknown = [v for v in value if v not in choices]
    if unknown:
        raise InvalidArgument(f"{name}={tuple(value)!r} names {unknown[0]!r}, which is not one "
                              f"of {', '.join(choices)}")
    if not value and not allow_empty:
        raise InvalidArgument(f"{name}={tuple(value)!r} must name at least one of "
                              f"{', '.join(choices)}")
    return tuple(c for c in choices if c in value)
