"""Invariants: pure checks over one example's :class:`~chaos.observation.Observation`.

Each has a stable name (used in reports, bug docstrings and JUnit) and
returns its violations, each with a one-line message and the evidence rows.

``info`` operations (no answer) are never assumed to have failed or
succeeded: an invariant holds if it holds for some resolution of them. In
practice every check below only draws obligations from what is certain (a
2xx answer, a definite 4xx/5xx status, Stripe's own records, the target's
rows), and treats any request that was sent as possibly effective, so an
unanswered request can always be resolved in the target's favour:

- a 2xx answer obliges (``no-lost-payment``, ``refund-voids-tickets``,
  ``duplicate-delivery-acknowledged``); an unanswered one never does;
- a status that is not the required one breaks a rule
  (``forged-delivery-rejected``, ``duplicate-delivery-acknowledged``);
  no status at all could still have been the required one;
- effects may come from any sent request (``forged-delivery-rejected``'s
  "changes nothing" only blames forged deliveries when no accepted delivery
  of the same payment was even sent).

Each invariant checks a promise (``chaos/promises.py``); :func:`check` runs
only those the target makes (``Observation.promises``). An invariant is
blamed only by evidence of its own kind: tickets missing after an
acknowledged payment are a lost payment unless the target's rows show them
issued and then voided (the ``voided`` column) while a forged refund was the
only refund sent; only then is the forgery blamed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.history import DeliveryRef, Op, Outcome, may_have_taken_effect
from chaos.observation import Observation, PaymentOutcome, Session
from chaos.promises import checked

#: Signature variants a correct endpoint must accept.
ACCEPTED_SIGNATURES = frozenset({"valid", "rotated"})
#: Signature variants a correct endpoint must reject with 4xx. (``future`` is
#: neither: Stripe's own libraries accept a future timestamp.)
FORGED_SIGNATURES = frozenset({"tampered", "wrong-secret", "stale", "missing"})
#: Events whose acceptance means "this payment is done: issue the tickets".
COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
REFUND_EVENTS = frozenset({"charge.refunded"})


@dataclass(frozen=True)
class Violation:
    """One breach of one invariant: what broke, and the rows that show it."""

    invariant: str
    message: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "message": self.message, "rows": self.rows}


# -- reading the observation ------------------------------------------------

def _deliveries(obs: Observation) -> list[Op]:
    return [op for op in obs.history.ops if op.delivery is not None and op.door == "target"]


def _ref(op: Op) -> DeliveryRef:
    """A delivery's reference: every request the invariants read an event of is one
    (:func:`_deliveries`); anything else is the checker's own mistake, said loudly."""
    ref = op.delivery
    if ref is None:
        raise TypeError(f"request {op.index + 1} ({op.kind}) is not a webhook delivery")
    return ref


def _signature(op: Op) -> str:
    return op.ref.signature_variant


def _accepted(op: Op) -> bool:
    return _signature(op) in ACCEPTED_SIGNATURES


def _forged(op: Op) -> bool:
    return _signature(op) in FORGED_SIGNATURES


def _is_for(op: Op, session: Session) -> bool:
    if _ref(op).session is not None:
        return _ref(op).session == session.id
    return session.payment_intent is not None and _ref(op).payment_intent == session.payment_intent


class _BySession:
    """The deliveries of one history grouped as :func:`_is_for` matches them to sessions
    (by session id, else by payment intent), each group in history order: looked up per
    session instead of scanning every delivery per session (a load interval holds
    hundreds of sessions and thousands of deliveries)."""

    def __init__(self, deliveries: list[Op]) -> None:
        self.by_session: dict[str, list[tuple[int, Op]]] = {}
        self.by_intent: dict[str, list[tuple[int, Op]]] = {}
        for position, op in enumerate(deliveries):
            ref = _ref(op)
            if ref.session is not None:
                self.by_session.setdefault(ref.session, []).append((position, op))
            elif ref.payment_intent is not None:
                self.by_intent.setdefault(ref.payment_intent, []).append((position, op))

    def ops(self, session: Session) -> list[Op]:
        """Exactly ``[op for op in deliveries if _is_for(op, session)]``."""
        mine = self.by_session.get(session.id, [])
        if session.payment_intent is not None:
            theirs = self.by_intent.get(session.payment_intent)
            if theirs:
                mine = sorted(mine + theirs, key=lambda pair: pair[0])
        return [op for _, op in mine]


#: The last history grouped (its ops list, their count, the groups): every invariant
#: of one check reads the same history. One slot, replaced as a whole.
_grouped: tuple[list[Op], int, _BySession] | None = None


def _deliveries_for(obs: Observation, session: Session) -> list[Op]:
    """This session's deliveries, in history order (see :class:`_BySession`)."""
    global _grouped
    ops = obs.history.ops
    cached = _grouped
    if cached is None or cached[0] is not ops or cached[1] != len(ops):
        cached = _grouped = (ops, len(ops), _BySession(_deliveries(obs)))
    return cached[2].ops(session)


def _fulfils(obs: Observation) -> Callable[[Op], bool]:
    """Does this delivery confirm its payment, by the target's promises
    (``promises.confirms``)? A completion confirms only when it says ``paid``:
    an unpaid one is the start of a delayed payment, not its confirmation."""
    confirms = obs.promises.confirms

    def fulfils(op: Op) -> bool:
        event = _ref(op).event
        if event not in confirms:
            return False
        return bool(event != COMPLETED or (_ref(op).payment_status or "paid") == "paid")

    return fulfils


def _refunds(op: Op) -> bool:
    return _ref(op).event in REFUND_EVENTS


def _rows_for(obs: Observation, session: Session) -> list[dict[str, Any]]:
    """The target's rows for this session: keyed by session id, else by payment intent."""
    return [row for row in obs.tickets_per_payment
            if (row.get("checkout_session") is not None and row["checkout_session"] == session.id)
            or (row.get("checkout_session") is None and session.payment_intent is not None
                and row.get("payment_intent") == session.payment_intent)]


def _tickets(rows: Iterable[dict[str, Any]]) -> int:
    return sum(int(row["tickets"] or 0) for row in rows)


def _voided(rows: Iterable[dict[str, Any]]) -> int | None:
    """Tickets issued and then voided, where the observation query tells them (its
    optional ``voided`` column); None where it does not."""
    rows = list(rows)
    if not rows or any("voided" not in row for row in rows):
        return None
    return sum(int(row["voided"] or 0) for row in rows)


def _flagged(rows: Iterable[dict[str, Any]]) -> int | None:
    """Refunds the target recorded for an admin to act on, where the observation query
    tells them (its optional ``flagged`` column); None where it does not."""
    rows = list(rows)
    if not rows or any("flagged" not in row for row in rows):
        return None
    return sum(int(row["flagged"] or 0) for row in rows)


def _orders(rows: Iterable[dict[str, Any]]) -> int:
    return sum(int(row["orders"] or 0) for row in rows)


def _name(session: Session) -> str:
    who = f" (buyer {session.buyer + 1})" if session.buyer is not None else ""
    if session.payment_intent:
        return f"payment {session.payment_intent}{who}"
    return f"session {session.id}{who}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _acknowledged(obs: Observation, session: Session, kind: Callable[[Op], bool]) -> list[Op]:
    """Accepted-signature deliveries of this kind for this session that answered 2xx."""
    return [op for op in _deliveries_for(obs, session)
            if op.outcome is Outcome.OK and _accepted(op) and kind(op)]


def _op_name(op: Op) -> str:
    """A request as the reports number it: by its step (the numbered steps and the
    timeline's lanes), or as a set-up request when it is not one of the schedule's."""
    return f"step {op.step + 1}" if op.step is not None else f"set-up request {op.index + 1}"


def _op_row(op: Op) -> dict[str, Any]:
    """A request as an evidence row, numbered like the steps; its ids link it to its lane."""
    return {"step": op.step + 1 if op.step is not None else None, "kind": op.kind,
            "event": _ref(op).event, "event_id": _ref(op).event_id,
            "payment_intent": _ref(op).payment_intent, "signature": _signature(op),
            "status": op.status, "outcome": op.outcome.value}


# -- the invariants -----------------------------------------------------------

def one_ticket_set_per_payment(obs: Observation) -> list[Violation]:
    """A paid payment has no tickets yet, or exactly one set (its quantity):
    never two sets, never a partial set, whatever number of deliveries arrived."""
    found = []
    for s in obs.sessions:
        if not s.outcome.holds_tickets or s.quantity is None:
            continue
        rows = _rows_for(obs, s)
        tickets = _tickets(rows)
        if s.outcome is PaymentOutcome.PARTIALLY_REFUNDED:
            tickets += _voided(rows) or 0   # what a refund voided: refund-voids-tickets' to judge
        if tickets not in (0, s.quantity):
            found.append(Violation(
                "one-ticket-set-per-payment",
                f"{_name(s)} bought {_plural(s.quantity, 'ticket')} but has {tickets} in "
                f"{_orders(rows)} order(s)",
                rows,
            ))
    return found


def no_oversold_ticket_type(obs: Observation) -> list[Violation]:
    """No ticket type has more valid tickets, or more units the service itself
    counts as taken, than its capacity."""
    found = []
    for row in obs.tickets_per_ticket_type:
        capacity, tickets, reserved = int(row["capacity"]), int(row["tickets"] or 0), row["reserved"]
        if tickets > capacity:
            found.append(Violation(
                "no-oversold-ticket-type",
                f"ticket type {row['ticket_type']} has {tickets} valid tickets for a capacity "
                f"of {capacity}",
                [row],
            ))
        elif reserved is not None and int(reserved) > capacity:
            found.append(Violation(
                "no-oversold-ticket-type",
                f"ticket type {row['ticket_type']} counts {reserved} units taken for a capacity "
                f"of {capacity}",
                [row],
            ))
    return found


def no_lost_payment(obs: Observation) -> list[Violation]:
    """A paid completion the target acknowledged with 2xx has its tickets
    (unless the payment was refunded in full or disputed since; a payment refunded
    in part still stands: its tickets were issued, and what its refund voided is
    ``refund-voids-tickets``' to judge).

    Under ``promises.refunds = "flag"`` a payment refunded in part that the target
    recorded for an admin (its rows' ``flagged`` column above 0) is the admin's to
    settle: a shop that finds the charge already refunded when it confirms (a
    re-fetch after a refund at Stripe) may hand the whole order to a person instead
    of issuing tickets. Only that evidence excuses it: without a ``flagged`` column,
    with none flagged, or under ``"void"``, the missing tickets are a lost payment."""
    found = []
    for s in obs.sessions:
        if s.outcome not in (PaymentOutcome.PAID, PaymentOutcome.PARTIALLY_REFUNDED) \
                or s.quantity is None:
            continue
        acks = _acknowledged(obs, s, _fulfils(obs))
        rows = _rows_for(obs, s)
        if _left_to_an_admin(obs, s, rows):
            continue
        tickets = _tickets(rows)
        if s.outcome is PaymentOutcome.PARTIALLY_REFUNDED:
            tickets += _voided(rows) or 0
        if acks and tickets < s.quantity and not _voided_by_forgery(obs, s, rows):
            found.append(Violation(
                "no-lost-payment",
                f"{_name(s)} was acknowledged with 2xx but has {tickets} of {s.quantity} tickets",
                rows + [_op_row(acks[0])],
            ))
    return found


def _left_to_an_admin(obs: Observation, s: Session, rows: list[dict[str, Any]]) -> bool:
    """Is this payment, refunded in part at Stripe, flagged for an admin by a target that
    promises to flag refunds (``promises.refunds = "flag"``, the ``flagged`` column)?"""
    return (obs.promises.refunds == "flag" and s.outcome is PaymentOutcome.PARTIALLY_REFUNDED
            and (_flagged(rows) or 0) > 0)


def _partial_refund_voided(obs: Observation, s: Session) -> list[Violation]:
    acks = _acknowledged(obs, s, _refunds)
    rows = _rows_for(obs, s)
    voided = _voided(rows)
    if not acks or not voided:
        return []
    return [Violation(
        "refund-voids-tickets",
        f"{_name(s)} was refunded in part (the payment stands) and the refund acknowledged "
        f"with 2xx, but {voided} of its {_plural(s.quantity or 0, 'ticket')} "
        f"{'was' if voided == 1 else 'were'} voided",
        rows + [_op_row(acks[0])],
    )]


def _voided_by_forgery(obs: Observation, session: Session, rows: list[dict[str, Any]]) -> bool:
    """Were this payment's tickets issued and then voided while the only refunds
    sent for it were forged? That is the forgery's evidence, not a lost payment's."""
    ops = [op for op in _deliveries_for(obs, session) if _refunds(op)
           and may_have_taken_effect(op)]
    return bool((_voided(rows) or 0) > 0 and ops and all(_forged(op) for op in ops))


def no_tickets_without_payment(obs: Observation) -> list[Violation]:
    """Tickets exist only for payments Stripe says succeeded: an unpaid, failed
    or expired session has none, and so has a session Stripe does not know."""
    found = []
    for s in obs.sessions:
        if s.outcome in (PaymentOutcome.UNPAID, PaymentOutcome.FAILED, PaymentOutcome.EXPIRED):
            rows = _rows_for(obs, s)
            tickets = _tickets(rows)
            if tickets > 0:
                found.append(Violation(
                    "no-tickets-without-payment",
                    f"{_name(s)} is {s.outcome.value} at Stripe but has "
                    f"{_plural(tickets, 'valid ticket')}",
                    rows,
                ))
    known = {id(row) for s in obs.sessions for row in _rows_for(obs, s)}
    for row in obs.tickets_per_payment:
        if id(row) not in known and int(row["tickets"] or 0) > 0:
            what = (f"checkout session {row['checkout_session']}" if row.get("checkout_session")
                    else f"payment {row.get('payment_intent')}")
            found.append(Violation(
                "no-tickets-without-payment",
                f"{what} has {_plural(int(row['tickets']), 'valid ticket')} but Stripe holds no "
                "such payment for this event",
                [row],
            ))
    return found


def refund_voids_tickets(obs: Observation) -> list[Violation]:
    """A full refund the target acknowledged with 2xx leaves no valid tickets for
    its payment, and the units go back: what the service counts as taken fits
    in the payments that were not refunded. A partial refund (Stripe's charge
    keeps ``refunded`` false: part of the amount, e.g. one seat of several) keeps
    the payment and its tickets: one the target acknowledged voids none of them
    (judged where the target's rows tell voided tickets: the ``voided`` column)."""
    found = []
    refunded_ack: set[str] = set()
    for s in obs.sessions:
        if s.outcome is PaymentOutcome.PARTIALLY_REFUNDED:
            found += _partial_refund_voided(obs, s)
            continue
        if s.outcome is not PaymentOutcome.REFUNDED:
            continue
        acks = _acknowledged(obs, s, _refunds)
        if not acks:
            continue
        refunded_ack.add(s.id)
        rows = _rows_for(obs, s)
        tickets = _tickets(rows)
        if tickets > 0:
            found.append(Violation(
                "refund-voids-tickets",
                f"{_name(s)} was refunded and the refund acknowledged with 2xx, but "
                f"{_plural(tickets, 'ticket')} {'is' if tickets == 1 else 'are'} still valid",
                rows + [_op_row(acks[0])],
            ))
    for row in obs.tickets_per_ticket_type:
        if row["reserved"] is None:
            continue
        of_type = [s for s in obs.sessions if s.ticket_type == row["ticket_type"]]
        if not any(s.id in refunded_ack for s in of_type) or any(s.quantity is None for s in of_type):
            continue
        held = sum(s.quantity or 0 for s in of_type if s.id not in refunded_ack)
        if int(row["reserved"]) > held:
            found.append(Violation(
                "refund-voids-tickets",
                f"ticket type {row['ticket_type']} still counts {row['reserved']} units taken "
                f"after refunds; the payments that were not refunded hold at most {held}",
                [row],
            ))
    return found


def forged_delivery_rejected(obs: Observation) -> list[Violation]:
    """A forged, tampered, stale, unsigned or wrong-secret delivery changes
    nothing; where the target verifies signatures (``promises.signatures =
    "verify"``) it also answers 4xx. A target that re-fetches (``"refetch"``)
    may acknowledge it, and may act on what Stripe's own records say.

    Its effect is blamed only by evidence of its own kind: tickets for a
    payment no accepted delivery was sent for, or tickets issued and then
    voided (the ``voided`` column) when the only refunds sent were forged.
    Tickets never issued after an acknowledged completion are a lost payment
    (``no-lost-payment``), whatever forged copies arrived as well.
    """
    found = []
    verifies = obs.promises.signatures == "verify"
    for op in _deliveries(obs) if verifies else []:
        if _forged(op) and op.status is not None and not 400 <= op.status < 500:
            found.append(Violation(
                "forged-delivery-rejected",
                f"{_op_name(op)}: a delivery of {_ref(op).event} signed "
                f"'{_signature(op)}' answered {op.status}; it must be rejected with 4xx",
                [_op_row(op)],
            ))
    for s in obs.sessions:
        mine = _deliveries_for(obs, s)
        forged = [op for op in mine if _forged(op) and may_have_taken_effect(op)]
        if not forged:
            continue
        rows = _rows_for(obs, s)
        accepted_sent = [op for op in mine if not _forged(op) and may_have_taken_effect(op)]
        justified = not verifies and s.outcome.holds_tickets  # a re-fetch found it paid
        if not accepted_sent and _tickets(rows) > 0 and not justified:
            found.append(Violation(
                "forged-delivery-rejected",
                f"{_name(s)} has {_plural(_tickets(rows), 'valid ticket')} although only forged "
                "deliveries for it arrived",
                rows + [_op_row(op) for op in forged],
            ))
            continue
        refunded_at_stripe = not verifies and s.outcome is PaymentOutcome.REFUNDED
        if s.quantity is not None and _tickets(rows) < s.quantity \
                and _voided_by_forgery(obs, s, rows) and not refunded_at_stripe:
            found.append(Violation(
                "forged-delivery-rejected",
                f"{_name(s)} has {_tickets(rows)} of {s.quantity} tickets valid "
                f"({_voided(rows)} voided) although only forged deliveries of its refund "
                "arrived",
                rows + [_op_row(op) for op in forged if _refunds(op)],
            ))
    return found


def charged_database_price(obs: Observation) -> list[Violation]:
    """Stripe charges the database's price times the quantity, whatever the
    client sent."""
    found = []
    sent = {c.session: c for c in obs.checkouts if c.session}
    for s in obs.sessions:
        if s.unit_price is None or s.quantity is None:
            continue
        expected = s.unit_price * s.quantity
        if s.amount_total != expected:
            attempt = sent.get(s.id)
            row = {"session": s.id, "amount_total": s.amount_total, "unit_price": s.unit_price,
                   "quantity": s.quantity}
            if attempt is not None:
                row.update(sent_unit_price=attempt.sent_unit_price, sent_total=attempt.sent_total)
            found.append(Violation(
                "charged-database-price",
                f"{_name(s)} is charged {s.amount_total} but the database price is "
                f"{s.unit_price} x {s.quantity} = {expected}",
                [row],
            ))
    return found


def one_session_per_idempotency_key(obs: Observation) -> list[Violation]:
    """All checkout attempts that share an idempotency key end in at most one
    Stripe session (counted from the target's answers and Stripe's records)."""
    found = []
    keys = sorted({c.idempotency_key for c in obs.checkouts if c.idempotency_key})
    for key in keys:
        attempts = [c for c in obs.checkouts if c.idempotency_key == key]
        sessions = {c.session for c in attempts if c.session}
        sessions |= {s.id for s in obs.sessions if s.idempotency_key == key}
        sessions |= {call.object_id for call in obs.stripe_calls
                     if call.idempotency_key == key and call.object_id
                     and call.path.rstrip("/") == "/v1/checkout/sessions" and call.method == "POST"
                     and 200 <= call.status < 300}
        if len(sessions) > 1:
            found.append(Violation(
                "one-session-per-idempotency-key",
                f"idempotency key {key} (buyer {attempts[0].buyer + 1}) produced "
                f"{len(sessions)} Stripe sessions: {', '.join(sorted(sessions))}",
                [{"idempotency_key": key, "sessions": sorted(sessions),
                  "attempts": len(attempts)}],
            ))
    return found


def duplicate_delivery_acknowledged(obs: Observation) -> list[Violation]:
    """Once one delivery of an event was acknowledged with 2xx, every other
    delivery of it (a duplicate, in flight at the same time or later) answers
    2xx too: anything else makes Stripe retry for days.

    A 5xx is excused in an example where a Stripe fault fired on the
    target's calls: "Stripe failed, retry me" is a correct answer then, and
    not about duplication. The shrinker removes faults, so a target that
    fails *because* of the duplicate is still found in a fault-free example.
    """
    found = []
    stripe_failed = any(call.fault for call in obs.stripe_calls)
    by_event: dict[Any, list[Op]] = {}
    for op in _deliveries(obs):
        if _accepted(op):
            key = _ref(op).event_id or (_ref(op).buyer, _ref(op).event)
            by_event.setdefault(key, []).append(op)
    for ops in by_event.values():
        for d in ops:
            if d.status is None or 200 <= d.status < 300 or (stripe_failed and d.status >= 500):
                continue
            acked = [o for o in ops if o is not d and o.outcome is Outcome.OK and o.start < d.end]
            if acked:
                found.append(Violation(
                    "duplicate-delivery-acknowledged",
                    f"{_op_name(d)}: a duplicate delivery of {_ref(d).event} "
                    f"answered {d.status} after {_op_name(acked[0])} was acknowledged",
                    [_op_row(acked[0]), _op_row(d)],
                ))
    return found


#: Every invariant, by its stable name, in the order of the shared contract.
INVARIANTS: dict[str, Callable[[Observation], list[Violation]]] = {
    "one-ticket-set-per-payment": one_ticket_set_per_payment,
    "no-oversold-ticket-type": no_oversold_ticket_type,
    "no-lost-payment": no_lost_payment,
    "no-tickets-without-payment": no_tickets_without_payment,
    "refund-voids-tickets": refund_voids_tickets,
    "forged-delivery-rejected": forged_delivery_rejected,
    "charged-database-price": charged_database_price,
    "one-session-per-idempotency-key": one_session_per_idempotency_key,
    "duplicate-delivery-acknowledged": duplicate_delivery_acknowledged,
}


def user_invariants(obs: Observation) -> list[Violation]:
    """The user's own invariants (a config's ``[[invariants]]``, or Python ones): a SQL
    query that returned rows is broken, the rows are the evidence; a Python invariant's
    breach was judged where it ran (``chaos.target.PythonInvariant.judge``)."""
    return [Violation(name, f"{message or name}: {_plural(len(rows), 'row')} returned by its "
                      "query, which must return none", [dict(r) for r in rows])
            for name, message, rows in obs.queries if rows] + \
        [Violation(name, message, [dict(r) for r in rows]) for name, message, rows in obs.functions]


def check(obs: Observation) -> list[Violation]:
    """Every violation of every invariant the target is held to (its promises), in
    catalogue order, then the user's own."""
    held = checked(obs.promises)
    return [v for name, invariant in INVARIANTS.items() if name in held
            for v in invariant(obs)] + user_invariants(obs)
