"""What the checker sees of one example: plain, frozen data, no I/O.

An :class:`Observation` gathers four sources, each the truth about one thing:

- the buyers' **checkout attempts**: what the client sent (idempotency key,
  a tampered price) and which session the target answered with;
- the **sessions** as the fake Stripe holds them at the end: who they are
  for, what Stripe charges, and the payment's outcome per Stripe;
- the **history**: every request and answer (``ok`` / ``fail`` / ``info``);
- the target's own **rows**, from the two observation queries of
  ``chaos/target.py``; and the fake Stripe's **call records** where it
  keeps them.

The runner fills it after every example; whoever drives a richer scenario
fills the same fields. ``sessions`` must list every Checkout Session the
fake Stripe holds for the example's event, including any the target created
that no buyer was told about: the checker treats tickets of an unknown
session as tickets without a payment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chaos.history import History
from chaos.promises import Promises
from strategies import STRIPE_ENDPOINTS


class PaymentOutcome(StrEnum):
    """A session's payment as Stripe sees it once the example is over."""

    PAID = "paid"            # paid (at once, or asynchronously and it succeeded)
    UNPAID = "unpaid"        # open, or completed with the payment still pending
    FAILED = "failed"        # an asynchronous payment that failed
    EXPIRED = "expired"      # never paid; the session expired
    REFUNDED = "refunded"    # paid, then refunded in full
    DISPUTED = "disputed"    # paid, then disputed by the card holder
    #: paid, then refunded in part (the charge's amount_refunded below its amount): the
    #: payment stands, and so do its tickets
    PARTIALLY_REFUNDED = "partially-refunded"

    @property
    def holds_tickets(self) -> bool:
        """May the buyer hold valid tickets for this payment?"""
        return self in (PaymentOutcome.PAID, PaymentOutcome.DISPUTED,
                        PaymentOutcome.PARTIALLY_REFUNDED)


def payment_outcome(session: Mapping[str, Any], events: Iterable[str] = (), *,
                    charge: Mapping[str, Any] | None = None) -> PaymentOutcome:
    """A session's outcome from Stripe's own records: the Checkout Session object
    and its payment's charge as they are now (refunds and disputes live on the
    charge). Without the charge (a fake Stripe that cannot list them), the types
    of the events Stripe emitted for the payment tell refunds and disputes.
    Never an event's snapshot: the completion of a delayed payment says
    ``unpaid``, the session says ``paid`` once it succeeded."""
    seen = set(events)
    if charge is not None:
        if charge.get("disputed"):
            return PaymentOutcome.DISPUTED
        if charge.get("refunded"):   # Stripe's flag: refunded in full
            return PaymentOutcome.REFUNDED
        if int(charge.get("amount_refunded") or 0) > 0 \
                and session.get("payment_status") in ("paid", "no_payment_required"):
            return PaymentOutcome.PARTIALLY_REFUNDED
    elif "charge.dispute.created" in seen:
        return PaymentOutcome.DISPUTED
    elif "charge.refunded" in seen:
        return PaymentOutcome.REFUNDED
    if session.get("status") == "expired":
        return PaymentOutcome.EXPIRED
    failed = charge.get("status") == "failed" if charge is not None \
        else "checkout.session.async_payment_failed" in seen
    if failed:
        return PaymentOutcome.FAILED
    if session.get("payment_status") in ("paid", "no_payment_required"):
        return PaymentOutcome.PAID
    return PaymentOutcome.UNPAID


@dataclass(frozen=True)
class CheckoutAttempt:
    """One checkout attempt by a buyer.

    ``op`` is the attempt's request in the history (None when the set-up
    created the session at the fake Stripe directly); ``session`` is the
    session id the target answered with, None without a 2xx answer.
    """

    buyer: int
    ticket_type: str
    quantity: int
    unit_price: int                         # the database's price, cents
    idempotency_key: str | None = None
    sent_unit_price: int | None = None      # the price the client claimed
    sent_total: int | None = None           # the total the client claimed
    op: int | None = None
    session: str | None = None

    @property
    def tampered(self) -> bool:
        return ((self.sent_unit_price is not None and self.sent_unit_price != self.unit_price)
                or (self.sent_total is not None
                    and self.sent_total != self.unit_price * self.quantity))


@dataclass(frozen=True)
class Session:
    """A Checkout Session as the fake Stripe holds it at the end of the example.

    ``buyer``, ``ticket_type``, ``quantity`` and ``unit_price`` say whom and
    what it is for (from the attempt it answered, or its metadata); None when
    unknown. ``idempotency_key`` is the buyer's checkout key it was created
    for, when that is known.
    """

    id: str
    amount_total: int                       # what Stripe charges, cents
    outcome: PaymentOutcome
    payment_intent: str | None = None
    buyer: int | None = None
    ticket_type: str | None = None
    quantity: int | None = None
    unit_price: int | None = None           # the database's price of ticket_type, cents
    idempotency_key: str | None = None


@dataclass(frozen=True)
class StripeCall:
    """One call the target made to the fake Stripe API, as the fake recorded it."""

    method: str
    path: str
    status: int
    idempotency_key: str | None = None
    object_id: str | None = None            # the id of the object it created or read
    fault: str | None = None                # the fault the fake Stripe played on it, if any

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StripeCall:
        """From one entry of the fake Stripe's ``GET /_chaos/records``."""
        return cls(method=str(record["method"]), path=str(record["path"]),
                   status=int(record["status"] or 0),
                   idempotency_key=record.get("idempotency_key"),
                   object_id=record.get("object_id"), fault=record.get("fault"))


def endpoints_called(calls: Iterable[StripeCall]) -> tuple[str, ...]:
    """The model's Stripe endpoints (``"GET /v1/checkout/sessions/{id}"``) that
    ``calls`` went to, in :data:`STRIPE_ENDPOINTS` order: where a fault can play."""
    seen = {(call.method, call.path) for call in calls}
    return tuple(endpoint for endpoint in STRIPE_ENDPOINTS
                 if any(_ENDPOINT_PATTERNS[endpoint].fullmatch(f"{method} {path}")
                        for method, path in seen))


_ENDPOINT_PATTERNS = {endpoint: re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(endpoint)))
                      for endpoint in STRIPE_ENDPOINTS}


@dataclass(frozen=True)
class Observation:
    """Everything the invariants read for one example.

    ``tickets_per_payment`` rows: ``checkout_session``, ``payment_intent``,
    ``orders``, ``tickets`` (valid tickets). ``tickets_per_ticket_type`` rows:
    ``ticket_type``, ``capacity``, ``tickets`` (valid), ``reserved`` (what the
    service counts as taken, or None). A ``tickets_per_payment`` row may also
    carry ``voided`` (tickets issued, then voided): the evidence that tells a
    wrongly voided ticket set from one never issued. ``promises`` say which
    invariants the target is held to.
    """

    history: History
    sessions: tuple[Session, ...] = ()
    checkouts: tuple[CheckoutAttempt, ...] = ()
    tickets_per_payment: tuple[dict[str, Any], ...] = ()
    tickets_per_ticket_type: tuple[dict[str, Any], ...] = ()
    stripe_calls: tuple[StripeCall, ...] = field(default=())
    #: The user's SQL invariants (a config's ``[[invariants]]``): (name, message, the rows
    #: its query returned); each must have returned none.
    queries: tuple[tuple[str, str, tuple[dict[str, Any], ...]], ...] = ()
    promises: Promises = field(default_factory=Promises)
    #: The user's Python invariants that broke (``chaos.target.PythonInvariant``): (name,
    #: message, the evidence rows its function returned).
    functions: tuple[tuple[str, str, tuple[dict[str, Any], ...]], ...] = ()


#: Columns each observation query must return, in the names the checker reads.
PAYMENT_COLUMNS = ("checkout_session", "payment_intent", "orders", "tickets")
TICKET_TYPE_COLUMNS = ("ticket_type", "capacity", "tickets", "reserved")
