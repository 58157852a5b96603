"""The playbook: the classic ways a Stripe integration breaks, as small scenarios.

Random search finds what nobody thought of; it can also take hundreds of
examples to draw a story everybody knows about (a refund delivered before
its completion is one draw in fifty). So a run first plays these, each the
smallest scenario of one well-known failure class, then searches. They are
inputs, not expectations: the invariants decide, exactly as for a drawn
scenario, and a correct target passes every one.

Each entry is ``(name, scenario)``; the classes are the ones Stripe's own
webhook documentation warns about (duplicate and retried events, events out
of order, delayed payment methods, replayed or forged signatures) and the
ones every checkout meets (double clicks, retries, the last tickets, prices
sent by the client).
"""

from __future__ import annotations

import dataclasses

from strategies._internal.model import (
    EVENT_TYPES,
    Buyer,
    Checkout,
    Delivery,
    Fault,
    Scenario,
    TicketType,
    story_events,
)

_COMPLETED = "checkout.session.completed"


def _one_buyer(outcome: str, *waves: tuple[Checkout | Delivery, ...]) -> Scenario:
    return Scenario(buyers=(Buyer(outcome=outcome),), waves=tuple(waves))


PLAYBOOK: tuple[tuple[str, Scenario], ...] = (
    ("duplicate deliveries fired together",
     _one_buyer("paid", (Delivery(0), Delivery(0, copy=1)))),
    ("a redelivery after the first was answered",
     _one_buyer("paid", (Delivery(0),), (Delivery(0, copy=1),))),
    ("two buyers race for the last ticket",
     Scenario(buyers=(Buyer(), Buyer()), ticket_types=(TicketType(capacity=1),),
              waves=((Checkout(0), Checkout(1)), (Delivery(0), Delivery(1))))),
    ("a double click at checkout (same idempotency key)",
     Scenario(buyers=(Buyer(),),
              waves=((Checkout(0), Checkout(0, attempt=1, key="same")), (Delivery(0),)))),
    ("a checkout retried with a new idempotency key",
     _one_buyer("paid", (Checkout(0, attempt=1, key="fresh"),))),
    ("a checkout that sends its own price",
     _one_buyer("paid", (Checkout(0, attempt=1, key="fresh", tamper="price"),))),
    ("a checkout that sends its own total",
     _one_buyer("paid", (Checkout(0, attempt=1, key="fresh", tamper="total"),))),
    ("a refund delivered before its completion",
     _one_buyer("refunded", (Delivery(0, event="charge.refunded"),), (Delivery(0),))),
    ("payment_intent.succeeded delivered before its completion",
     _one_buyer("paid", (Delivery(0, event="payment_intent.succeeded"),), (Delivery(0),))),
    ("a delayed payment completes unpaid, then fails",
     _one_buyer("async-failed", (Delivery(0),),
                (Delivery(0, event="checkout.session.async_payment_failed"),))),
    ("a delayed payment completes unpaid, then succeeds",
     _one_buyer("async-succeeded", (Delivery(0),),
                (Delivery(0, event="checkout.session.async_payment_succeeded"),))),
    ("a captured delivery replayed after the tolerance",
     _one_buyer("paid", (Delivery(0, signature="stale"),))),
    ("a forged delivery (body changed after signing)",
     _one_buyer("paid", (Delivery(0, signature="tampered"),))),
    ("a delivery signed with another secret",
     _one_buyer("paid", (Delivery(0, signature="wrong-secret"),))),
    ("a forged delivery, then the genuine one",
     _one_buyer("paid", (Delivery(0, signature="tampered"),), (Delivery(0, copy=1),))),
    ("a delivery signed during a secret rotation",
     _one_buyer("paid", (Delivery(0, signature="rotated"),))),
    # a correct service answers 5xx (Stripe retries); one that answered 2xx owes the tickets.
    # Five in a row: more than a client's retries, and calls still running from the
    # example before may take one or two of them
    ("Stripe fails the service's session lookup, five times in a row",
     Scenario(buyers=(Buyer(),), waves=((Delivery(0),),),
              faults=tuple(Fault(kind="5xx", endpoint="GET /v1/checkout/sessions/{id}", nth=n)
                           for n in range(1, 6)))),
    ("an expired session's event",
     _one_buyer("expired", (Delivery(0, event="checkout.session.expired"),))),
    ("a purchase of two tickets completed, then refunded",
     Scenario(buyers=(Buyer(quantity=2, outcome="refunded"),),
              waves=((Delivery(0),), (Delivery(0, event="charge.refunded"),)))),
)


def playbook(*, confirming: str = _COMPLETED) -> tuple[tuple[str, Scenario], ...]:
    """The playbook's ``(name, scenario)`` pairs, in the order a run plays them.

    ``confirming`` is the event type that confirms a payment at the target: for a
    target that is not sent completions (a shop that confirms on
    ``payment_intent.succeeded`` or ``charge.succeeded``), every delivery of a
    completion becomes a delivery of that event, so the classic stories (duplicates,
    races, refunds before the payment) still reach it; a story that becomes another
    one (that event before the completion) is played once."""
    if confirming not in EVENT_TYPES:
        raise ValueError(f"confirming={confirming!r} is not one of {', '.join(EVENT_TYPES)}")
    if confirming == _COMPLETED:
        return PLAYBOOK
    stories: list[tuple[str, Scenario]] = []
    for name, scenario in PLAYBOOK:
        copies: dict[tuple[int, str], int] = {}
        waves = []
        for wave in scenario.waves:
            steps: list[Checkout | Delivery] = []
            for step in wave:
                if isinstance(step, Delivery):
                    emits = story_events(scenario.buyers[step.buyer].outcome)
                    event = confirming if step.event == _COMPLETED and confirming in emits \
                        else step.event  # a story without that event keeps its completion
                    copy = copies.get((step.buyer, event), 0)  # copies count in schedule order
                    copies[(step.buyer, event)] = copy + 1
                    step = dataclasses.replace(step, event=event, copy=copy)
                steps.append(step)
            waves.append(tuple(steps))
        aimed = dataclasses.replace(scenario, waves=tuple(waves))
        if all(aimed != other for _, other in stories):  # a story told twice is played once
            stories.append((name, aimed))
    return tuple(stories)
