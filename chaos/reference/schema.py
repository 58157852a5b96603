"""The reference service's schema, in the PostgreSQL schema it is given.

The correct version leans on constraints, not on application checks alone:
- ``processed_webhook_events.event_id`` is a primary key, so two concurrent
  deliveries of one event cannot both be recorded;
- ``tickets`` are unique per (order, ticket type, seat number), so an order
  can never hold two ticket sets, whatever the handlers do;
- ``ticket_types.reserved`` (held + sold) can never exceed ``capacity``;
- ``orders.stripe_session_id`` is unique: one order per Checkout Session;
- ``checkout_requests.idempotency_key`` is a primary key: one order per key.

A bug that, in the real world, comes with a missing constraint gets the
schema without it (``no-dedup`` and friends: no unique tickets; ``oversell``:
no capacity check; ``check-then-insert``: no primary key on processed events).
"""

from __future__ import annotations

#: Bugs whose team relies on the event dedup alone to avoid a second ticket set.
TRUSTS_EVENT_DEDUP = frozenset({"no-dedup", "check-then-insert", "fail-open-dedup"})


def ddl(bugs: frozenset[str]) -> str:
    """The DDL for the service with ``bugs`` switched on (idempotent: ``if not exists``)."""
    unique_tickets = not (bugs & TRUSTS_EVENT_DEDUP)
    capacity_check = "oversell" not in bugs
    event_pk = "check-then-insert" not in bugs
    event_index = ("create index if not exists processed_webhook_events_id "
                   "on processed_webhook_events(event_id);")
    return f"""
create table if not exists events (
    id text primary key,
    name text not null
);
create table if not exists ticket_types (
    id text primary key,
    event_id text not null references events(id),
    name text not null,
    price_cents integer not null check (price_cents >= 0),
    capacity integer not null check (capacity >= 0),
    reserved integer not null default 0 check (reserved >= 0)
        {'check (reserved <= capacity)' if capacity_check else ''}
);
create index if not exists ticket_types_event on ticket_types(event_id);
create table if not exists orders (
    id bigserial primary key,
    event_id text not null references events(id),
    status text not null,
    amount_cents integer not null,
    currency text not null default 'usd',
    customer_email text not null,
    customer_name text,
    idempotency_key text,
    stripe_session_id text unique,
    checkout_url text,
    payment_intent_id text,
    amount_paid_cents integer,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index if not exists orders_event on orders(event_id);
create index if not exists orders_payment_intent on orders(payment_intent_id);
create table if not exists order_items (
    order_id bigint not null references orders(id),
    ticket_type_id text not null references ticket_types(id),
    quantity integer not null check (quantity > 0),
    unit_price_cents integer not null,
    primary key (order_id, ticket_type_id)
);
create table if not exists tickets (
    id bigserial primary key,
    order_id bigint not null references orders(id),
    ticket_type_id text not null references ticket_types(id),
    seq integer not null,
    status text not null default 'valid',
    created_at timestamptz not null default now()
    {', unique (order_id, ticket_type_id, seq)' if unique_tickets else ''}
);
create index if not exists tickets_order on tickets(order_id);
create index if not exists tickets_type on tickets(ticket_type_id);
create table if not exists processed_webhook_events (
    event_id text {'primary key' if event_pk else 'not null'},
    type text not null,
    processed_at timestamptz not null default now()
);
{'' if event_pk else event_index}
create table if not exists checkout_requests (
    idempotency_key text primary key,
    request_hash text not null,
    order_id bigint not null references orders(id),
    status_code integer,
    response text,
    created_at timestamptz not null default now()
);
create table if not exists early_refunds (
    payment_intent_id text primary key,
    event_id text not null,
    created_at timestamptz not null default now()
);
"""
