"""Building an example's :class:`~chaos.observation.Observation`: a pure function of what
was planned, what was sent and answered, what Stripe holds and what the target stored.

The runner (``chaos.run``) gathers the inputs (the fake Stripe's view over
HTTP, the target's rows over SQL); :func:`observe` maps them, with no I/O, so
it is tested like the invariants: over hand-made histories and rows
(``tests/test_observe.py``). The load mode builds its check intervals'
observations the same way.

What it decides:

- **Checkouts**: one per checkout attempt of the plan, with the op that sent
  it (by the op's ``attempt_id``) and the session it was answered with.
- **Sessions**: every session the fake Stripe listed for the example (on the
  ``payment-intent`` journey, every PaymentIntent, seen as a session by
  :func:`intent_as_session`), plus any
  a buyer was bound to that it did not list (a fake Stripe that cannot list
  sessions: the completion event's snapshot). Each is attributed to its buyer
  by id (the binding, else the first attempt answered with it), else read
  from its metadata (``ticket_type_id``, ``quantity``).
- **Payment outcome**: from Stripe's own records (the session and the latest
  charge of its payment intent); only a fake Stripe that cannot list charges
  leaves the buyer's own events to tell refunds and disputes.
- Ticket type ids are text throughout: the metadata Stripe keeps is text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chaos.history import History
from chaos.observation import CheckoutAttempt, Observation, Session, StripeCall, payment_outcome
from chaos.promises import Promises
from strategies import Scenario


@dataclass(frozen=True)
class StripeView:
    """What the fake Stripe holds after an example (None: it could not tell)."""

    sessions: list[dict[str, Any]] | None = None
    calls: list[StripeCall] | None = None
    #: The charges of the sessions' payment intents, as they are now.
    charges: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class TargetRows:
    """What the target stored for the example's event, read with the config's observe SQL
    (columns checked): rows per payment, rows per ticket type, and each of the config's
    own invariants as (name, message, the rows its query returned)."""

    tickets_per_payment: tuple[dict[str, Any], ...] = ()
    tickets_per_ticket_type: tuple[dict[str, Any], ...] = ()
    queries: tuple[tuple[str, str, tuple[dict[str, Any], ...]], ...] = field(default=())


class AttemptView(Protocol):
    """A checkout attempt as the plan recorded it (``chaos.plan.Attempt``)."""

    @property
    def id(self) -> int: ...
    @property
    def buyer(self) -> int: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def unit_price(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def session_id(self) -> str | None: ...


class BindingView(Protocol):
    """What a buyer's story bound at run time (``chaos.plan.BuyerBinding``)."""

    @property
    def session_id(self) -> str | None: ...
    @property
    def events(self) -> Mapping[str, Mapping[str, Any]]: ...


class PlanView(Protocol):
    """The parts of a plan (``chaos.plan.Plan``) the observation is built from."""

    @property
    def attempts(self) -> Sequence[AttemptView]: ...
    @property
    def bindings(self) -> Sequence[BindingView]: ...


def intent_as_session(intent: Mapping[str, Any]) -> dict[str, Any]:
    """A bare PaymentIntent (the ``payment-intent`` journey) seen as the payment it is:
    the fields of a Checkout Session the observation reads, under the intent's own id
    (canceled reads as expired, succeeded as paid)."""
    status = intent.get("status")
    return {"id": intent["id"], "object": "payment_intent",
            "amount_total": intent.get("amount"), "currency": intent.get("currency"),
            "status": {"canceled": "expired", "succeeded": "complete"}.get(str(status), "open"),
            "payment_status": "paid" if status == "succeeded" else "unpaid",
            "payment_intent": intent["id"], "metadata": dict(intent.get("metadata") or {})}


def observe(scenario: Scenario, ticket_types: Sequence[Any], plan: PlanView, history: History,
            stripe: StripeView, rows: TargetRows, *,
            promises: Promises | None = None) -> Observation:
    """What the checker may know of one example (see the module docstring for the rules).

    ``ticket_types`` are the fixture's ticket type ids, in the scenario's order."""
    kinds = [str(k) for k in ticket_types]
    prices = {kinds[i]: tt.price for i, tt in enumerate(scenario.ticket_types)}
    op_of = {ref.attempt_id: op.index for op in history.ops if (ref := op.checkout) is not None}
    checkouts = []
    answered: dict[str, AttemptView] = {}  # session id -> the first attempt answered with it
    for attempt in plan.attempts:
        buyer = scenario.buyers[attempt.buyer]
        tt_id = kinds[buyer.ticket_type]
        checkouts.append(CheckoutAttempt(
            buyer=attempt.buyer, ticket_type=tt_id, quantity=buyer.quantity,
            unit_price=prices[tt_id], idempotency_key=attempt.idempotency_key,
            sent_unit_price=attempt.unit_price, sent_total=attempt.total,
            op=op_of.get(attempt.id), session=attempt.session_id))
        if attempt.session_id:
            answered.setdefault(attempt.session_id, attempt)
    owner_of = {b.session_id: i for i, b in enumerate(plan.bindings) if b.session_id}
    listed: dict[str, Mapping[str, Any]] = {obj["id"]: obj for obj in stripe.sessions or []}
    for binding in plan.bindings if stripe.sessions is None else ():
        # a fake Stripe that cannot list its sessions: the completion's snapshot
        completed = binding.events.get("checkout.session.completed")
        if binding.session_id and binding.session_id not in listed and completed:
            listed[binding.session_id] = completed["data"]["object"]
    # the latest charge of each payment intent: refunds and disputes live there
    charge_of = {c["payment_intent"]: c for c in stripe.charges or []}
    sessions = []
    for session_id, obj in listed.items():
        meta = obj.get("metadata") or {}
        first = answered.get(session_id)
        owner = owner_of.get(session_id, first.buyer if first else None)
        kind: str | None
        quantity: int | None
        if owner is not None:
            buyer = scenario.buyers[owner]
            kind = kinds[buyer.ticket_type]
            quantity = buyer.quantity
        else:
            kind = None if meta.get("ticket_type_id") is None else str(meta["ticket_type_id"])
            quantity = int(meta["quantity"]) if str(meta.get("quantity", "")).isdigit() else None
        # Stripe's charge tells refunds and disputes; a fake Stripe that cannot list
        # charges leaves the events of the buyer's own session to tell them
        events = list(plan.bindings[owner].events) \
            if owner is not None and owner_of.get(session_id) == owner else []
        charge = charge_of.get(obj.get("payment_intent")) if stripe.charges is not None \
            else None
        sessions.append(Session(
            id=session_id, amount_total=int(obj.get("amount_total") or 0),
            outcome=payment_outcome(obj, events if stripe.charges is None else (),
                                    charge=charge),
            payment_intent=obj.get("payment_intent"),
            buyer=owner, ticket_type=kind, quantity=quantity,
            unit_price=prices.get(kind) if kind else None,
            idempotency_key=first.idempotency_key if first else None,
        ))
    return Observation(
        history=history, sessions=tuple(sessions), checkouts=tuple(checkouts),
        tickets_per_payment=rows.tickets_per_payment,
        tickets_per_ticket_type=tuple(
            {**row, "ticket_type": None if row["ticket_type"] is None else str(row["ticket_type"])}
            for row in rows.tickets_per_ticket_type),
        stripe_calls=tuple(stripe.calls or ()),
        queries=rows.queries,
        promises=promises if promises is not None else Promises(),
    )
