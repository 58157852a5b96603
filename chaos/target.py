"""What the tester knows about the system under test.

For the reference service these are built in; later a config file fills the
same fields for any service (paths, keys, secrets, fixture SQL, observation SQL).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The reference service's anon key unless ``CHAOS_ANON_KEY`` sets another
#: (the seed's ``SUPABASE_ANON_KEY``: sent as ``apikey`` and as a Bearer token).
DEFAULT_ANON_KEY = "anon_chaos_reference_key"


@dataclass(frozen=True)
class Target:
    base_url: str
    webhook_secret: str
    webhook_path: str = "/functions/v1/stripe-webhook"
    #: The seed's checkout door: JSON {eventId, tickets, customerEmail, customerName, total}.
    checkout_path: str = "/functions/v1/create-checkout-session"
    #: Sent as ``apikey: KEY`` and ``Authorization: Bearer KEY`` to the checkout door.
    anon_key: str = DEFAULT_ANON_KEY
    metrics_path: str | None = "/_chaos/metrics"
    health_path: str = "/_chaos/health"
    #: Creates the event of one example; $1 is the example's event id.
    fixture_event_sql: str = "insert into events (id, name) values ($1, 'Chaos night ' || $1)"
    #: Creates one ticket type; $1 id, $2 event id, $3 name, $4 price in cents, $5 capacity.
    fixture_ticket_type_sql: str = (
        "insert into ticket_types (id, event_id, name, price_cents, capacity) "
        "values ($1, $2, $3, $4, $5)"
    )
    #: One row per checkout session of the example's event ($1) that has an order:
    #: (checkout_session, payment_intent, orders, tickets), tickets = valid tickets.
    tickets_per_payment_sql: str = (
        "select o.stripe_session_id as checkout_session, "
        "max(o.payment_intent_id) as payment_intent, "
        "count(*)::int as orders, coalesce(sum(t.valid), 0)::int as tickets "
        "from orders o left join lateral (select count(*) as valid from tickets t "
        "where t.order_id = o.id and t.status = 'valid') t on true "
        "where o.event_id = $1 and o.stripe_session_id is not null "
        "group by o.stripe_session_id order by min(o.id)"
    )
    #: One row per ticket type of the example's event ($1): (ticket_type, capacity,
    #: tickets, reserved); tickets = valid tickets, reserved = held + sold.
    tickets_per_ticket_type_sql: str = (
        "select tt.id as ticket_type, tt.capacity, "
        "(select count(*) from tickets t where t.ticket_type_id = tt.id "
        "and t.status = 'valid')::int as tickets, tt.reserved "
        "from ticket_types tt where tt.event_id = $1 order by tt.id"
    )

    def checkout_headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        """The headers of a checkout request, as the seed's client sends them."""
        headers = {"content-type": "application/json", "apikey": self.anon_key,
                   "authorization": f"Bearer {self.anon_key}"}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        return headers

    def __repr__(self) -> str:  # never print the secret or the key
        return f"Target(base_url={self.base_url!r}, webhook_path={self.webhook_path!r})"
