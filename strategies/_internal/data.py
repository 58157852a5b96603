"""A scenario as JSON-ready data, and back: for reports, case files and the corpus.

The form is plain (lists and objects of numbers and strings), every step
carries its ``kind`` (``deliver`` or ``checkout``), and fields added after
the first version are optional on the way in, so older case files still
load. Reading rejects anything it does not understand with a ValueError
that names the place (``waves[0][1]``) and the fix.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields
from typing import Any, TypeVar

from strategies._internal.model import (
    STEP_KINDS,
    Buyer,
    Checkout,
    Delivery,
    Fault,
    Scenario,
    TicketType,
)

T = TypeVar("T")

_STEP_CLASSES: dict[str, type[Delivery] | type[Checkout]] = {
    Delivery.kind: Delivery,
    Checkout.kind: Checkout,
}
_TOP_LEVEL = ("ticket_types", "buyers", "waves", "faults")


def to_data(scenario: Scenario) -> dict[str, Any]:
    """The scenario as JSON-ready data; :func:`from_data` reads it back equal."""
    return {
        "ticket_types": [asdict(t) for t in scenario.ticket_types],
        "buyers": [asdict(b) for b in scenario.buyers],
        "waves": [[{"kind": s.kind, **asdict(s)} for s in wave] for wave in scenario.waves],
        "faults": [asdict(f) for f in scenario.faults],
    }


def from_data(data: Any) -> Scenario:
    """Read :func:`to_data`'s form back and validate it."""
    if not isinstance(data, dict):
        raise ValueError(f"not a scenario: expected an object with buyers and waves, "
                         f"got {type(data).__name__}")
    unknown = sorted(set(data) - set(_TOP_LEVEL))
    if unknown:
        raise ValueError(f"not a scenario: unknown field {unknown[0]!r}; "
                         f"known fields: {', '.join(_TOP_LEVEL)}")
    for required in ("buyers", "waves"):
        if required not in data:
            raise ValueError(f"not a scenario: missing field {required!r}")
    scenario = Scenario(
        ticket_types=tuple(_build(TicketType, t, f"ticket_types[{i}]")
                           for i, t in enumerate(_list(data.get("ticket_types", [{}]),
                                                       "ticket_types"))),
        buyers=tuple(_build(Buyer, b, f"buyers[{i}]")
                     for i, b in enumerate(_list(data["buyers"], "buyers"))),
        waves=tuple(
            tuple(_step(s, f"waves[{w}][{i}]") for i, s in enumerate(_list(wave, f"waves[{w}]")))
            for w, wave in enumerate(_list(data["waves"], "waves"))
        ),
        faults=tuple(_build(Fault, f, f"faults[{i}]")
                     for i, f in enumerate(_list(data.get("faults", []), "faults"))),
    )
    scenario.validate()
    return scenario


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, not {type(value).__name__}")
    return value


def _step(item: Any, where: str) -> Delivery | Checkout:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object, not {type(item).__name__}")
    item = dict(item)
    kind = item.pop("kind", Delivery.kind)
    if kind not in _STEP_CLASSES:
        raise ValueError(f"{where}: unknown step kind {kind!r}: choose from {', '.join(STEP_KINDS)}")
    return _build(_STEP_CLASSES[kind], item, where)


def _build(cls: type[T], item: Any, where: str) -> T:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object, not {type(item).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(item) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; known fields: "
                         f"{', '.join(known)}")
    for name, f in known.items():
        if name not in item and f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"{where}: missing field {name!r}")
    return cls(**item)
