-- The seed's Supabase schema, reconstructed from what its two edge functions do
-- (create-checkout-session and stripe-webhook, run unmodified here; see issue 21).
-- Only what the functions read and write, in the shape they use it; everything else
-- a real project has (RLS policies, more columns, triggers) is left out. Assumptions,
-- where the functions did not tell: prices are numeric currency units (25.00; the
-- checkout sends Stripe price * 100 cents), ids are uuid as Supabase creates them.
--
-- Load it into a local stack with `psql "$DATABASE_URL" -f examples/supabase/schema.sql`
-- (only on a database without these tables), or into any schema: it names none.

create table events (
    id uuid primary key default gen_random_uuid(),
    name text not null,
    status text not null default 'published',
    created_at timestamptz not null default now()
);

-- Inventory: total_inventory units, tickets_sold of them counted as sold.
create table ticket_types (
    id uuid primary key default gen_random_uuid(),
    event_id uuid not null references events (id) on delete cascade,
    name text not null,
    price numeric(10, 2) not null check (price >= 0),
    fee numeric(10, 2) not null default 0 check (fee >= 0),
    status text not null default 'active',
    total_inventory integer not null check (total_inventory >= 0),
    tickets_sold integer not null default 0,
    created_at timestamptz not null default now()
);

-- One per checkout: 'pending' until the webhook sets it 'paid'; payment_reference is
-- the Checkout Session id, set once Stripe created the session.
create table orders (
    id uuid primary key default gen_random_uuid(),
    event_id uuid not null references events (id),
    customer_email text not null,
    customer_name text,
    total_amount numeric(10, 2),
    status text not null default 'pending',
    payment_reference text,
    created_at timestamptz not null default now()
);
create index orders_event on orders (event_id);
create index orders_payment_reference on orders (payment_reference);

-- One row per unit; nothing stops a second set for the same order (the race is real).
create table tickets (
    id uuid primary key default gen_random_uuid(),
    order_id uuid not null references orders (id),
    ticket_type_id uuid not null references ticket_types (id),
    status text not null default 'issued',
    created_at timestamptz not null default now()
);
create index tickets_order on tickets (order_id);
create index tickets_ticket_type on tickets (ticket_type_id);

-- The webhook's idempotency record: one row per (event id, source).
create table webhook_idempotency (
    event_id text not null,
    source text not null default 'stripe',
    status text not null default 'processing',
    response jsonb,
    created_at timestamptz not null default now(),
    processed_at timestamptz,
    primary key (event_id, source)
);

-- The unit price of a ticket type now (the seed's tiers reduce to its price here);
-- null when the ticket type is unknown or not on sale.
create function get_current_tier_price(p_ticket_type_id uuid)
returns numeric
language plpgsql stable as $$
declare
    current_price numeric;
begin
    select tt.price into current_price
      from ticket_types tt
     where tt.id = p_ticket_type_id and tt.status = 'active';
    return current_price;
end;
$$;

-- Check, then claim: a select, then an insert. Two copies of one event at the same time
-- both find nothing; the second insert then fails with a duplicate key, which the
-- webhook logs and processes the event anyway (it fails open).
create function check_webhook_idempotency(p_event_id text, p_source text default 'stripe')
returns table (is_duplicate boolean, previous_status text)
language plpgsql as $$
declare
    found_status text;
begin
    select w.status into found_status
      from webhook_idempotency w
     where w.event_id = p_event_id and w.source = p_source;
    if found then
        return query select true, found_status;
        return;
    end if;
    insert into webhook_idempotency (event_id, source, status)
    values (p_event_id, p_source, 'processing');
    return query select false, null::text;
end;
$$;

-- Record how the event ended (after the work).
create function update_webhook_idempotency(p_event_id text, p_source text default 'stripe',
                                           p_status text default 'processed',
                                           p_response jsonb default null)
returns void
language plpgsql as $$
begin
    insert into webhook_idempotency (event_id, source, status, response, processed_at)
    values (p_event_id, p_source, p_status, p_response, now())
    on conflict (event_id, source)
    do update set status = excluded.status, response = excluded.response,
                  processed_at = excluded.processed_at;
end;
$$;
