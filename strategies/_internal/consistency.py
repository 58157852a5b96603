"""``Scenario.validate()``: do the parts of a scenario agree with each other?

Scenarios built by the strategies always pass; this guards hand-written and
stored ones (case files, the corpus) before the executor trusts their
references. Each message names the part the way :meth:`Scenario.render`
numbers it ("buyer 2", "wave 1, step 3") and says what would be valid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strategies._internal.model import (
    CHECKOUT_KEYS,
    EVENT_TYPES,
    FAULT_KINDS,
    MAX_OFFSET_MS,
    OUTCOMES,
    SIGNATURES,
    STRIPE_ENDPOINTS,
    TAMPERING,
    Checkout,
    Delivery,
    ordinal,
)

if TYPE_CHECKING:
    from strategies._internal.model import Scenario


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(where: str, name: str, value: object, low: int) -> None:
    if not _is_int(value):
        raise ValueError(f"{where}: {name} must be a whole number, not {value!r}")
    assert isinstance(value, int)
    if value < low:
        raise ValueError(f"{where}: {name} is {value}; it must be >= {low}")


def _one_of(where: str, name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{where}: unknown {name} {value!r}: choose from {', '.join(choices)}")


def validate(scenario: Scenario) -> None:
    """Raise ValueError naming the first part that does not fit."""
    if not scenario.ticket_types:
        raise ValueError("a scenario needs at least one ticket type")
    if not scenario.buyers:
        raise ValueError("a scenario needs at least one buyer")
    for i, tt in enumerate(scenario.ticket_types):
        _int_at_least(f"ticket type {i + 1}", "price", tt.price, 1)
        _int_at_least(f"ticket type {i + 1}", "capacity", tt.capacity, 0)
    for b, buyer in enumerate(scenario.buyers):
        where = f"buyer {b + 1}"
        _int_at_least(where, "quantity", buyer.quantity, 1)
        if not _is_int(buyer.ticket_type) or not 0 <= buyer.ticket_type < len(scenario.ticket_types):
            raise ValueError(f"{where} names ticket type {_plus_one(buyer.ticket_type)}, "
                             f"but the event has {len(scenario.ticket_types)}")
        _one_of(where, "outcome", buyer.outcome, OUTCOMES)
    _validate_schedule(scenario)
    _validate_faults(scenario)


def _plus_one(index: object) -> object:
    return index + 1 if _is_int(index) else repr(index)  # type: ignore[operator]


def _validate_schedule(scenario: Scenario) -> None:
    timed = _timed_checkouts(scenario)
    copies: dict[tuple[int, str], int] = {}
    attempts: dict[int, int] = {}
    for n, (w, step) in enumerate(scenario.steps(), start=1):
        where = f"wave {w + 1}, step {n}"
        number = "copy" if isinstance(step, Delivery) else "attempt"
        _int_at_least(where, number, getattr(step, number), 0)
        where = f"{where} ({step.describe()})"
        buyer = scenario.buyers[step.buyer]
        if isinstance(step, Delivery):
            _one_of(where, "event type", step.event, EVENT_TYPES)
            if step.event not in buyer.events:
                raise ValueError(f"{where}: buyer {step.buyer + 1}'s story ({buyer.outcome}) "
                                 f"emits no {step.event}; it emits {', '.join(buyer.events)}")
            _one_of(where, "signature variant", step.signature, SIGNATURES)
            sent = copies.get((step.buyer, step.event), 0)
            if step.copy != sent:
                raise ValueError(f"{where}: it is the {ordinal(sent + 1)} copy in schedule "
                                 f"order, so copy must be {sent}")
            copies[(step.buyer, step.event)] = sent + 1
            if step.buyer in timed and w <= timed[step.buyer]:
                raise ValueError(f"{where}: buyer {step.buyer + 1} checks out in wave "
                                 f"{timed[step.buyer] + 1}, so its events can only be "
                                 "delivered in a later wave")
        else:
            _one_of(where, "key", step.key, CHECKOUT_KEYS)
            _one_of(where, "tampering", step.tamper, TAMPERING)
            if step.attempt == 0:
                if step.key != "same" or step.tamper != "none":
                    raise ValueError(f"{where}: the buyer's own checkout (attempt 0) uses its "
                                     "own key and is not tampered")
                continue
            done = attempts.get(step.buyer, 0)
            if step.attempt != done + 1:
                raise ValueError(f"{where}: it is the buyer's {ordinal(done + 1)} extra "
                                 f"attempt in schedule order, so attempt must be {done + 1}")
            attempts[step.buyer] = done + 1
            if step.buyer in timed and w < timed[step.buyer]:
                raise ValueError(f"{where}: buyer {step.buyer + 1}'s own checkout comes in "
                                 f"wave {timed[step.buyer] + 1}; repeat it there or later")


def _timed_checkouts(scenario: Scenario) -> dict[int, int]:
    """Check the waves' shape and every step's buyer and offset; return the
    wave of each buyer's own checkout placed in the schedule."""
    timed: dict[int, int] = {}
    n = 0
    for w, wave in enumerate(scenario.waves):
        if not isinstance(wave, tuple) or not wave:
            raise ValueError(f"wave {w + 1} is empty: drop it or give it a step")
        previous_offset = 0
        for step in wave:
            n += 1
            where = f"wave {w + 1}, step {n}"
            if not isinstance(step, Delivery | Checkout):
                raise ValueError(f"{where}: not a step: {step!r}")
            if not _is_int(step.buyer) or not 0 <= step.buyer < len(scenario.buyers):
                raise ValueError(f"{where} names buyer {_plus_one(step.buyer)}, "
                                 f"but the scenario has {len(scenario.buyers)}")
            _int_at_least(where, "offset_ms", step.offset_ms, 0)
            if step.offset_ms > MAX_OFFSET_MS:
                raise ValueError(f"{where}: offset_ms is {step.offset_ms}; "
                                 f"it must be <= {MAX_OFFSET_MS}")
            if step.offset_ms < previous_offset:
                raise ValueError(f"{where}: offset_ms {step.offset_ms} is smaller than the step "
                                 f"before it ({previous_offset}); list a wave in firing order")
            previous_offset = step.offset_ms
            if isinstance(step, Checkout) and step.attempt == 0:
                if step.buyer in timed:
                    raise ValueError(f"{where}: buyer {step.buyer + 1}'s own checkout "
                                     "(attempt 0) appears twice")
                timed[step.buyer] = w
    return timed


def _validate_faults(scenario: Scenario) -> None:
    armed: set[tuple[str, int]] = set()
    for i, fault in enumerate(scenario.faults):
        where = f"fault {i + 1}"
        _one_of(where, "fault kind", fault.kind, FAULT_KINDS)
        _one_of(where, "endpoint", fault.endpoint, STRIPE_ENDPOINTS)
        _int_at_least(where, "nth", fault.nth, 1)
        _int_at_least(where, "times", fault.times, 1)
        _int_at_least(where, "latency_ms", fault.latency_ms, 0)
        if (fault.kind == "latency") != (fault.latency_ms > 0):
            raise ValueError(f"{where}: latency_ms is {fault.latency_ms}; give it (> 0) for "
                             "kind 'latency' only")
        for nth in fault.calls:
            if (fault.endpoint, nth) in armed:
                raise ValueError(f"{where}: the {ordinal(nth)} call to {fault.endpoint} already "
                                 "has a fault; one fault per call")
            armed.add((fault.endpoint, nth))
