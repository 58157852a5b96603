"""Promises: what a target says it does, and which invariant holds it to it.

A built-in invariant is only fair where the target makes the promise it
checks. Services shaped differently are each correct on their own terms: a
checkout that takes no idempotency key cannot break "one session per key";
a webhook that re-fetches every object from Stripe may acknowledge a forged
delivery as long as it changes nothing Stripe's records do not justify; a
shop that flags refunded orders for an admin does not void tickets itself,
and a payment refunded in part whose refund it flagged before confirming the
payment is the admin's to settle, not a lost payment.

A config declares the promises in ``[promises]`` (and the idempotency promise
through ``target.checkout.idempotency_header``); the defaults are what a user
of the seed's stack would expect, and what the reference service keeps, so
its runs check every invariant. :func:`judged` says, per built-in invariant,
the promise it checks and whether it is checked, and why; the report lists
it. A user's ``[[invariants]]`` are promises of their own, always checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: ``verify``: forged deliveries are rejected with 4xx; ``refetch``: the event is only a
#: trigger, every object is read again from Stripe, so a forged delivery may be
#: acknowledged but must change nothing.
SIGNATURE_POLICIES = ("verify", "refetch")
#: ``void``: a full refund voids the tickets and gives the units back (a partial refund,
#: part of the amount, keeps them); ``flag``: the order is flagged for an admin, tickets
#: stay as they are until a person acts (a payment refunded in part and flagged before it
#: was confirmed waits for that person too: ``no-lost-payment``).
REFUND_POLICIES = ("void", "flag")
#: Event types a target may confirm a payment on (a config's ``promises.confirms``).
CONFIRMING_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded",
                     "payment_intent.succeeded", "charge.succeeded")
#: What confirms a payment unless the config says otherwise.
DEFAULT_CONFIRMS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


@dataclass(frozen=True)
class Promises:
    """What the target promises. The defaults are the reference service's."""

    #: The checkout header that carries the idempotency key; "": no key is taken, so
    #: none is promised.
    idempotency_header: str = "idempotency-key"
    signatures: str = "verify"
    #: Event types whose 2xx acknowledgement means "this payment is confirmed".
    confirms: tuple[str, ...] = DEFAULT_CONFIRMS
    refunds: str = "void"

    def __post_init__(self) -> None:
        if self.signatures not in SIGNATURE_POLICIES:
            raise ValueError(f"signatures={self.signatures!r} is not one of "
                             f"{', '.join(SIGNATURE_POLICIES)}")
        if self.refunds not in REFUND_POLICIES:
            raise ValueError(f"refunds={self.refunds!r} is not one of {', '.join(REFUND_POLICIES)}")
        unknown = [e for e in self.confirms if e not in CONFIRMING_EVENTS]
        if unknown or not self.confirms:
            raise ValueError(f"confirms={list(self.confirms)!r} must name one or more of "
                             f"{', '.join(CONFIRMING_EVENTS)}")

    @property
    def idempotent_checkout(self) -> bool:
        return bool(self.idempotency_header)


@dataclass(frozen=True)
class Judged:
    """One built-in invariant against the target's promises."""

    invariant: str
    promise: str        # the promise it checks, in the target's own terms
    checked: bool
    why: str            # the declaration that makes it checked or not

    def to_data(self) -> dict[str, object]:
        return {"invariant": self.invariant, "promise": self.promise, "checked": self.checked,
                "why": self.why}


def judged(p: Promises) -> list[Judged]:
    """Every built-in invariant, in the catalogue's order, with its promise."""
    forged = ("forged, stale or unsigned deliveries are rejected with 4xx and change nothing"
              if p.signatures == "verify" else
              "forged deliveries may be acknowledged, but change nothing Stripe's own records "
              "do not justify")
    refund = ("an acknowledged full refund voids the payment's tickets and gives the units "
              "back; a partial refund voids none"
              if p.refunds == "void" else
              "a refund flags the order for an admin; tickets are not voided by the service")
    lost = "an acknowledged confirmation of a paid payment issues its tickets" + (
        "" if p.refunds == "void" else
        ", unless it was refunded in part and the target flagged that refund for an admin "
        "(the flagged column)")
    idem = (f"checkout attempts sharing an {p.idempotency_header} header end in one Stripe session"
            if p.idempotent_checkout else "no idempotency key is taken at checkout")
    return [
        Judged("one-ticket-set-per-payment", "a paid payment holds at most one full ticket set",
               True, "every ticketing service"),
        Judged("no-oversold-ticket-type", "no ticket type sells past its capacity", True,
               "every ticketing service"),
        Judged("no-lost-payment", lost, True,
               f"promises.confirms = {json.dumps(list(p.confirms))}"
               + ("" if p.refunds == "void" else f', promises.refunds = "{p.refunds}"')),
        Judged("no-tickets-without-payment", "tickets only for payments Stripe says succeeded",
               True, "every ticketing service"),
        Judged("refund-voids-tickets", refund, p.refunds == "void",
               f'promises.refunds = "{p.refunds}"'),
        Judged("forged-delivery-rejected", forged, True,
               f'promises.signatures = "{p.signatures}"'),
        Judged("charged-database-price", "Stripe charges the database's price", True,
               "every ticketing service"),
        Judged("one-session-per-idempotency-key", idem, p.idempotent_checkout,
               f'target.checkout.idempotency_header = "{p.idempotency_header}"'),
        Judged("duplicate-delivery-acknowledged",
               "every copy of an acknowledged event is acknowledged too", True,
               "every webhook endpoint: Stripe retries what is not 2xx"),
    ]


def checked(p: Promises) -> frozenset[str]:
    """The names of the built-in invariants this target is held to."""
    return frozenset(j.invariant for j in judged(p) if j.checked)
