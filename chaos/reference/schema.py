"""The reference service's schema, in the PostgreSQL schema it is given.

The correct version leans on constraints, not on application checks: a
primary key on processed webhook events and a unique checkout session per
order make concurrent duplicate deliveries harmless. Bugs that remove a
constraint get a schema without it.
"""

from __future__ import annotations


def ddl(bugs: frozenset[str]) -> str:
    dedup = "no-dedup" not in bugs
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
    sold integer not null default 0
);
create table if not exists orders (
    id bigserial primary key,
    event_id text not null references events(id),
    ticket_type_id text not null references ticket_types(id),
    quantity integer not null check (quantity > 0),
    stripe_session_id text not null{' unique' if dedup else ''},
    payment_intent_id text,
    customer_email text,
    amount_cents integer not null,
    status text not null,
    created_at timestamptz not null default now()
);
create index if not exists orders_event on orders(event_id);
create table if not exists tickets (
    id bigserial primary key,
    order_id bigint not null references orders(id),
    ticket_type_id text not null references ticket_types(id),
    status text not null default 'valid',
    created_at timestamptz not null default now()
);
create index if not exists tickets_order on tickets(order_id);
create table if not exists processed_webhook_events (
    event_id text primary key,
    type text not null,
    processed_at timestamptz not null default now()
);
"""
