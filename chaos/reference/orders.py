"""The order book: every change to orders, capacity and tickets, as SQL on one
connection the caller holds (inside its transaction).

Capacity is counted in ``ticket_types.reserved`` (held + sold). An order
holds its units while it is ``pending`` (checkout open), ``awaiting_payment``
(completed, payment still in flight) or ``paid``; every way out of those
states (``refunded``, ``expired``, ``payment_failed``, ``failed``) gives the
units back exactly once, because each transition runs under the order's row
lock and is conditional on the state it leaves.

    pending ──▶ awaiting_payment ──▶ paid ──▶ refunded
       │               │
       ├──▶ expired    └──▶ payment_failed        (any holding state ──▶ refunded)
       └──▶ failed  (Stripe never gave us a session; a retry with the same key resumes it)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

HOLDING = ("pending", "awaiting_payment", "paid")


@dataclass(frozen=True)
class Line:
    """One line of an order: a ticket type, how many, at what unit price (cents)."""

    ticket_type_id: str
    quantity: int
    unit_price: int
    name: str = ""


class SoldOut(Exception):
    """Not enough units left of a ticket type."""

    def __init__(self, ticket_type_id: str) -> None:
        super().__init__(ticket_type_id)
        self.ticket_type_id = ticket_type_id


async def reserve(conn: asyncpg.Connection, lines: list[Line]) -> None:
    """Take the lines' units, all or none: one conditional update per ticket type,
    in id order (so two multi-line checkouts never deadlock). Raises SoldOut; the
    caller's transaction then rolls the earlier lines back."""
    for line in sorted(lines, key=lambda x: x.ticket_type_id):
        taken = await conn.fetchval(
            "update ticket_types set reserved = reserved + $2 "
            "where id = $1 and reserved + $2 <= capacity returning id",
            line.ticket_type_id, line.quantity,
        )
        if taken is None:
            raise SoldOut(line.ticket_type_id)


async def take_unchecked(conn: asyncpg.Connection, lines: list[Line]) -> None:
    """Take the lines' units without looking at capacity (the ``oversell`` team
    checked availability earlier, before the Stripe round trip)."""
    for line in sorted(lines, key=lambda x: x.ticket_type_id):
        await conn.execute("update ticket_types set reserved = reserved + $2 where id = $1",
                           line.ticket_type_id, line.quantity)


async def give_back(conn: asyncpg.Connection, order_id: int) -> None:
    """Return an order's units to capacity (the caller made sure it held them)."""
    await conn.execute(
        "update ticket_types tt set reserved = tt.reserved - oi.quantity "
        "from order_items oi where oi.order_id = $1 and tt.id = oi.ticket_type_id",
        order_id,
    )


async def create(conn: asyncpg.Connection, *, event_id: str, lines: list[Line], amount: int,
                 email: str, name: str | None, idempotency_key: str | None = None,
                 request_hash: str | None = None) -> int:
    """A new pending order, its lines, and (with a key) the claim of its
    Idempotency-Key, in one statement; the order's id. A key claimed already
    raises UniqueViolationError."""
    order_id: int = await conn.fetchval(
        "with o as (insert into orders (event_id, status, amount_cents, customer_email, "
        "customer_name, idempotency_key) values ($1, 'pending', $2, $3, $4, $5) returning id), "
        "i as (insert into order_items (order_id, ticket_type_id, quantity, unit_price_cents) "
        "select o.id, l.ticket_type_id, l.quantity, l.unit_price "
        "from o, unnest($6::text[], $7::int[], $8::int[]) as l(ticket_type_id, quantity, unit_price)), "
        "c as (insert into checkout_requests (idempotency_key, request_hash, order_id) "
        "select $5, $9, o.id from o where $5::text is not null) "
        "select id from o",
        event_id, amount, email, name, idempotency_key,
        [line.ticket_type_id for line in lines], [line.quantity for line in lines],
        [line.unit_price for line in lines], request_hash,
    )
    return order_id


async def lines_of(conn: asyncpg.Connection, order_id: int) -> list[Line]:
    rows = await conn.fetch("select ticket_type_id, quantity, unit_price_cents from order_items "
                            "where order_id = $1 order by ticket_type_id", order_id)
    return [Line(r["ticket_type_id"], r["quantity"], r["unit_price_cents"]) for r in rows]


async def lock(conn: asyncpg.Connection, order_id: int) -> asyncpg.Record | None:
    """The order's row, locked until the caller's transaction ends."""
    return await conn.fetchrow(
        "select id, status, stripe_session_id, payment_intent_id from orders "
        "where id = $1 for update", order_id,
    )


async def find(conn: asyncpg.Connection, *, order_id: Any = None, session_id: str | None = None,
               payment_intent: str | None = None) -> int | None:
    """The order an event names: by our own ``order_id`` (metadata), else by the
    Checkout Session, else by the payment intent. ``None`` when none matches.
    The metadata is trusted only if the order has no other session than the
    event's (an id can never point a session at somebody else's order)."""
    try:
        by_id = int(order_id) if order_id is not None else None
    except (TypeError, ValueError):
        by_id = None
    if by_id is not None:
        found = await conn.fetchval(
            "select id from orders where id = $1 and (stripe_session_id is null "
            "or $2::text is null or stripe_session_id = $2)", by_id, session_id)
        if found is not None:
            return int(found)
    if session_id:
        found = await conn.fetchval("select id from orders where stripe_session_id = $1",
                                    session_id)
        if found is not None:
            return int(found)
    if payment_intent:
        found = await conn.fetchval(
            "select id from orders where payment_intent_id = $1 order by id limit 1",
            payment_intent)
        if found is not None:
            return int(found)
    return None


async def _issue_tickets(conn: asyncpg.Connection, order_id: int) -> None:
    # One ticket per unit, numbered per (order, ticket type). The correct schema
    # has a unique constraint on that number, so a second set cannot exist.
    await conn.execute(
        "insert into tickets (order_id, ticket_type_id, seq) "
        "select oi.order_id, oi.ticket_type_id, s "
        "from order_items oi cross join lateral generate_series(1, oi.quantity) s "
        "where oi.order_id = $1 on conflict do nothing",
        order_id,
    )


async def _mark_paid(conn: asyncpg.Connection, order_id: int, *, session_id: str | None,
                     payment_intent: str | None, amount_paid: int | None) -> None:
    await conn.execute(
        "update orders set status = 'paid', updated_at = now(), "
        "stripe_session_id = coalesce(stripe_session_id, $2), "
        "payment_intent_id = coalesce(payment_intent_id, $3), "
        "amount_paid_cents = coalesce($4, amount_paid_cents) where id = $1",
        order_id, session_id, payment_intent, amount_paid,
    )


async def fulfil(conn: asyncpg.Connection, order_id: int, *, session_id: str | None,
                 payment_intent: str | None, amount_paid: int | None) -> str:
    """Mark a paid order paid and issue its tickets, once, whatever the number
    and order of the events that say so. Returns what happened."""
    order = await lock(conn, order_id)
    if order is None:
        return "unknown order"
    status = order["status"]
    if status == "paid":
        return "already fulfilled"
    if status == "refunded":
        await _link(conn, order_id, session_id, payment_intent)
        return "refunded before fulfilment"
    if status not in HOLDING:
        # Its hold was released (expired, failed, payment failed) but Stripe says
        # it is paid after all: take the units again if they are still there.
        try:
            await reserve(conn, await lines_of(conn, order_id))
        except SoldOut:
            await _set_status(conn, order_id, "unfulfillable")
            return "paid but sold out: needs a refund"
    intent = payment_intent or order["payment_intent_id"]
    if intent and await conn.fetchval(
            "select true from early_refunds where payment_intent_id = $1", intent):
        await _link(conn, order_id, session_id, intent)
        await _set_status(conn, order_id, "refunded")
        await give_back(conn, order_id)
        return "refunded before fulfilment"
    await _mark_paid(conn, order_id, session_id=session_id, payment_intent=payment_intent,
                     amount_paid=amount_paid)
    await _issue_tickets(conn, order_id)
    return "fulfilled"


async def fulfil_unguarded(conn: asyncpg.Connection, order_id: int, *, session_id: str | None,
                           payment_intent: str | None, amount_paid: int | None) -> str:
    """The fulfilment of a team whose only guard is its event dedup: mark paid
    and issue tickets, without looking at the order's state."""
    await _mark_paid(conn, order_id, session_id=session_id, payment_intent=payment_intent,
                     amount_paid=amount_paid)
    await _issue_tickets(conn, order_id)
    return "fulfilled"


async def await_payment(conn: asyncpg.Connection, order_id: int, *, session_id: str | None,
                        payment_intent: str | None) -> str:
    """The session completed but the money is still in flight: keep the hold."""
    order = await lock(conn, order_id)
    if order is None:
        return "unknown order"
    await _link(conn, order_id, session_id, payment_intent)
    if order["status"] == "pending":
        await _set_status(conn, order_id, "awaiting_payment")
        return "awaiting payment"
    return f"already {order['status']}"


async def release(conn: asyncpg.Connection, order_id: int, status: str,
                  *, only_from: tuple[str, ...] = ("pending", "awaiting_payment")) -> str:
    """Give up an unpaid order (expired, payment failed, Stripe failed): its units
    go back once. A paid order is never released this way."""
    order = await lock(conn, order_id)
    if order is None:
        return "unknown order"
    if order["status"] not in only_from:
        return f"already {order['status']}"
    await _set_status(conn, order_id, status)
    await give_back(conn, order_id)
    return status


async def refund(conn: asyncpg.Connection, order_id: int, *, payment_intent: str | None) -> str:
    """A full refund: tickets void, units back, order refunded, once."""
    order = await lock(conn, order_id)
    if order is None:
        return "unknown order"
    await _link(conn, order_id, None, payment_intent)
    status = order["status"]
    if status == "refunded":
        return "already refunded"
    await _set_status(conn, order_id, "refunded")
    if status in HOLDING:
        await give_back(conn, order_id)
    await conn.execute("update tickets set status = 'void' where order_id = $1 and status = 'valid'",
                       order_id)
    return "refunded"


async def refund_unknown(conn: asyncpg.Connection, payment_intent: str, event_id: str) -> str:
    """A refund for a payment no order knows yet (it arrived before the
    completion): remember it, so the fulfilment refunds instead."""
    await conn.execute("insert into early_refunds (payment_intent_id, event_id) values ($1, $2) "
                       "on conflict do nothing", payment_intent, event_id)
    return "refund recorded before its payment"


async def link_payment_intent(conn: asyncpg.Connection, order_id: int,
                              payment_intent: str) -> str:
    """Remember which payment intent pays an order (refunds name it)."""
    await _link(conn, order_id, None, payment_intent)
    return "payment intent linked"


async def _link(conn: asyncpg.Connection, order_id: int, session_id: str | None,
                payment_intent: str | None) -> None:
    if session_id or payment_intent:
        await conn.execute(
            "update orders set stripe_session_id = coalesce(stripe_session_id, $2), "
            "payment_intent_id = coalesce(payment_intent_id, $3), updated_at = now() "
            "where id = $1", order_id, session_id, payment_intent,
        )


async def _set_status(conn: asyncpg.Connection, order_id: int, status: str) -> None:
    await conn.execute("update orders set status = $2, updated_at = now() where id = $1",
                       order_id, status)
