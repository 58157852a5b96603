"""What the tester knows about the system under test.

For the reference service these are built in; later a config file fills the
same fields for any service (paths, secrets, fixture SQL, observation SQL).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    base_url: str
    webhook_secret: str
    webhook_path: str = "/functions/v1/stripe-webhook"
    metrics_path: str | None = "/_chaos/metrics"
    health_path: str = "/_chaos/health"
    #: Creates the event of one example; $1 is the example's event id.
    fixture_event_sql: str = "insert into events (id, name) values ($1, 'Chaos night ' || $1)"
    #: Creates one ticket type; $1 id, $2 event id, $3 name, $4 price in cents, $5 capacity.
    fixture_ticket_type_sql: str = (
        "insert into ticket_types (id, event_id, name, price_cents, capacity) "
        "values ($1, $2, $3, $4, $5)"
    )
    #: One row per checkout session of the event ($1) that has an order:
    #: (checkout_session, payment_intent, orders, tickets = valid tickets).
    tickets_per_payment_sql: str = (
        "select o.stripe_session_id as checkout_session, "
        "min(o.payment_intent_id) as payment_intent, count(distinct o.id)::int as orders, "
        "count(t.id) filter (where t.status = 'valid')::int as tickets "
        "from orders o left join tickets t on t.order_id = o.id "
        "where o.event_id = $1 group by o.stripe_session_id"
    )
    #: One row per ticket type of the event ($1): (ticket_type, capacity, tickets = valid
    #: tickets, reserved = units the service counts as taken, or null if it keeps no count).
    tickets_per_ticket_type_sql: str = (
        "select tt.id as ticket_type, tt.capacity, "
        "(select count(*) from tickets t where t.ticket_type_id = tt.id "
        "and t.status = 'valid')::int as tickets, null::int as reserved "
        "from ticket_types tt where tt.event_id = $1 order by tt.id"
    )

    def __repr__(self) -> str:  # never print the secret
        return f"Target(base_url={self.base_url!r}, webhook_path={self.webhook_path!r})"
