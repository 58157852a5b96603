"""What the tester knows about the system under test.

For the reference service these are built in; a config file
(``chaos/config.py``) fills the same fields for any service: paths, method,
headers, the checkout body template, where the answer keeps the session,
secrets, fixture SQL, observation SQL and the user's own SQL invariants.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.errors import UsageError
from chaos.history import History
from chaos.observation import Observation, Session
from chaos.promises import Promises

#: The reference service's anon key unless ``CHAOS_ANON_KEY`` sets another
#: (the seed's ``SUPABASE_ANON_KEY``: sent as ``apikey`` and as a Bearer token).
DEFAULT_ANON_KEY = "anon_chaos_reference_key"

#: The seed's checkout payload as a body template (see :func:`render_body`).
DEFAULT_BODY: dict[str, Any] = {
    "eventId": "{{event_id}}",
    "tickets": [{"ticketTypeId": "{{ticket_type_id}}", "quantity": "{{quantity}}",
                 "price": "{{unit_price}}"}],
    "customerEmail": "{{email}}",
    "customerName": "{{name}}",
    "total": "{{total}}",
}

#: The names a body template may use.
BODY_NAMES = ("event_id", "ticket_type_id", "quantity", "unit_price", "total", "email", "name",
              "buyer")

#: How a buyer's payment begins (``[target.checkout] journey``): at the target's own
#: checkout door; with a Checkout Session the tool creates at the fake Stripe (a
#: checkout that lives in the browser); through a Payment Link of the ticket type; or
#: with a bare PaymentIntent the tool creates and the buyer confirms (Elements).
JOURNEYS = ("endpoint", "stripe-session", "payment-link", "payment-intent")
#: What the tool lists at the fake Stripe per ticket type on the Stripe journeys, known
#: before the fixture runs ($6..$9 of ``fixtures.ticket_type``, $7..$9 of ``fixtures.buyer``).
CATALOGUE_NAMES = ("product_id", "price_id", "payment_link_id", "payment_link_url")
#: Every name a template may use; a ``fixtures.buyer`` row adds its columns.
TEMPLATE_NAMES = BODY_NAMES + CATALOGUE_NAMES
#: The Checkout Session the tool creates on the ``stripe-session`` journey (a template).
DEFAULT_SESSION: dict[str, Any] = {
    "line_items": [{"price": "{{price_id}}", "quantity": "{{quantity}}"}],
    "metadata": {"event_id": "{{event_id}}", "ticket_type_id": "{{ticket_type_id}}",
                 "quantity": "{{quantity}}"},
    "customer_email": "{{email}}",
}
#: The PaymentIntent the tool creates on the ``payment-intent`` journey (a template), as
#: a shop built on Elements creates it for its buyer before the card form is shown.
DEFAULT_INTENT: dict[str, Any] = {
    "amount": "{{total}}", "currency": "usd",
    "metadata": {"event_id": "{{event_id}}", "ticket_type_id": "{{ticket_type_id}}",
                 "quantity": "{{quantity}}"},
    "receipt_email": "{{email}}",
}
#: The metadata of the Payment Link the tool lists per ticket type (Stripe copies it to
#: every session bought through the link); a template without buyer names.
DEFAULT_LINK_METADATA: dict[str, Any] = {"event_id": "{{event_id}}",
                                         "ticket_type_id": "{{ticket_type_id}}"}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(template: Any) -> set[str]:
    """Every ``{{name}}`` a body template uses."""
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, Mapping):
        return set().union(*(placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, (list, tuple)):
        return set().union(*(placeholders(v) for v in template)) if template else set()
    return set()


def render_body(template: Any, values: Mapping[str, Any]) -> Any:
    """The template with its placeholders filled: a string that is exactly
    ``{{name}}`` becomes the value with its own type; inside a longer string
    ``{{name}}`` is replaced as text."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
    if isinstance(template, Mapping):
        return {k: render_body(v, values) for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return [render_body(v, values) for v in template]
    return template


def dig(answer: Any, path: str) -> Any:
    """The value at a dotted path of a JSON answer (``checkout.id``); KeyError when absent."""
    value = answer
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


@dataclass(frozen=True)
class SqlInvariant:
    """A user invariant: a query that must return no rows ($1 = the example's event id)."""

    name: str
    sql: str
    message: str = ""


#: Runs a read-only statement on the target's database: ``query(sql, *args)``; with no
#: ``args``, $1 is the example's event id (as in a SQL invariant). Rows as dicts.
Query = Callable[..., list[dict[str, Any]]]


@dataclass(frozen=True)
class ExampleData:
    """What a :class:`PythonInvariant` is given about one example, once it has run: the
    example's event id (the fixture's), the :class:`~chaos.observation.Observation` the
    built-in invariants judge (the history, the sessions as Stripe holds them, the rows of
    the observe SQL) and :attr:`query`, read-only SQL on the target's database."""

    event_id: Any
    observation: Observation
    query: Query

    @property
    def history(self) -> History:
        """Every request of the example and its answer (``ok`` / ``fail`` / ``info``)."""
        return self.observation.history

    @property
    def sessions(self) -> tuple[Session, ...]:
        """The example's Checkout Sessions as the fake Stripe holds them at the end."""
        return self.observation.sessions

    @property
    def tickets_per_payment(self) -> tuple[dict[str, Any], ...]:
        return self.observation.tickets_per_payment

    @property
    def tickets_per_ticket_type(self) -> tuple[dict[str, Any], ...]:
        return self.observation.tickets_per_ticket_type


#: A Python invariant's function: the evidence rows that break it (none: it holds).
InvariantFunction = Callable[[ExampleData], Iterable[Mapping[str, Any]] | None]


@dataclass(frozen=True)
class PythonInvariant:
    """A user invariant written in Python: ``check(data)`` returns the rows (mappings)
    that break it, none when it holds; a failed ``assert`` in it breaks it too, with the
    assertion's text. It is judged, reported, shrunk and saved like a SQL invariant."""

    name: str
    check: InvariantFunction
    message: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise UsageError(f"invariant name {self.name!r} must be a short name (letters, "
                             "digits, - _ .), e.g. no-admission-without-purchase")
        if not callable(self.check):
            raise UsageError(f"invariant {self.name}: check={self.check!r} is not a function: "
                             "pass a function of one argument (chaos.ExampleData)")

    def judge(self, data: ExampleData) -> tuple[str, tuple[dict[str, Any], ...]] | None:
        """The violation's message and evidence rows, or None when it holds. An exception
        other than AssertionError is the function's own bug: a UsageError naming it."""
        what = self.message or self.name
        try:
            found = self.check(data)
        except AssertionError as exc:
            text = str(exc).strip() or "an assert failed"
            return f"{what}: {text.splitlines()[0]}", ({"assertion": text},)
        except Exception as exc:
            raise UsageError(f"invariant {self.name} raised {type(exc).__name__}: "
                             f"{str(exc).strip()[:200]}: fix the function") from None
        if found is None:
            return None
        if isinstance(found, (str, bytes, Mapping)) or not isinstance(found, Iterable):
            raise UsageError(f"invariant {self.name} returned {type(found).__name__}: return "
                             "the rows that break it (a list of dicts), empty when it holds")
        rows = []
        for row in found:
            if not isinstance(row, Mapping):
                raise UsageError(f"invariant {self.name} returned a row of type "
                                 f"{type(row).__name__}: each row must be a dict")
            rows.append(dict(row))
        if not rows:
            return None
        return (f"{what}: {len(rows)} row{'s' if len(rows) != 1 else ''} returned by its "
                "function, which must return none"), tuple(rows)

    def __repr__(self) -> str:
        return f"PythonInvariant({self.name!r})"


#: A user invariant: SQL that must return no rows, or a Python function.
UserInvariant = SqlInvariant | PythonInvariant


@dataclass(frozen=True)
class Target:
    base_url: str
    webhook_secret: str
    webhook_path: str = "/functions/v1/stripe-webhook"
    #: The seed's checkout door: JSON {eventId, tickets, customerEmail, customerName, total}.
    checkout_path: str = "/functions/v1/create-checkout-session"
    #: Sent as ``apikey: KEY`` and ``Authorization: Bearer KEY`` to the checkout door
    #: (unless ``checkout_extra_headers`` says otherwise).
    anon_key: str = DEFAULT_ANON_KEY
    metrics_path: str | None = "/_chaos/metrics"
    health_path: str = "/_chaos/health"
    #: Creates the event of one example; $1 is the example's event id. A returned
    #: row's first column is the event id used from then on.
    fixture_event_sql: str = "insert into events (id, name) values ($1, 'Chaos night ' || $1)"
    #: Creates one ticket type; $1 id, $2 event id, $3 name, $4 price in cents, $5 capacity.
    #: A returned row's first column is the ticket type id used from then on.
    fixture_ticket_type_sql: str = (
        "insert into ticket_types (id, event_id, name, price_cents, capacity) "
        "values ($1, $2, $3, $4, $5)"
    )
    #: One row per checkout session of the example's event ($1) that has an order:
    #: (checkout_session, payment_intent, orders, tickets), tickets = valid tickets, and
    #: optionally voided (issued, then voided: tells a voided set from a lost one).
    tickets_per_payment_sql: str = (
        "select o.stripe_session_id as checkout_session, "
        "max(o.payment_intent_id) as payment_intent, "
        "count(*)::int as orders, coalesce(sum(t.valid), 0)::int as tickets, "
        "coalesce(sum(t.voided), 0)::int as voided "
        "from orders o left join lateral (select count(*) filter (where t.status = 'valid') "
        "as valid, count(*) filter (where t.status <> 'valid') as voided from tickets t "
        "where t.order_id = o.id) t on true "
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
    #: Shown in reports (a config's ``target.name``); "" for the reference service.
    name: str = ""
    checkout_method: str = "POST"
    #: Headers of every checkout request; None: the anon-key pair above.
    checkout_extra_headers: Mapping[str, str] | None = None
    #: The header that carries the idempotency key; "": the target takes none.
    idempotency_header: str = "idempotency-key"
    #: The checkout body template; None: :data:`DEFAULT_BODY` (the seed's payload).
    body_template: Any = None
    #: Dotted paths in the checkout answer to the session id and the checkout URL ("": none).
    session_id_path: str = "sessionId"
    url_path: str = "url"
    #: Extra headers on every webhook delivery.
    webhook_headers: Mapping[str, str] = field(default_factory=dict)
    #: The secret being rotated out (the ``rotated`` signature variant); None: a derived one.
    old_secret: str | None = None
    #: The user's own invariants (SQL or Python), checked after every example.
    invariants: tuple[UserInvariant, ...] = ()
    #: How a buyer's payment begins: one of :data:`JOURNEYS`.
    journey: str = "endpoint"
    #: The session template of the ``stripe-session`` journey; None: :data:`DEFAULT_SESSION`.
    session_template: Any = None
    #: The Payment Link metadata template of ``payment-link``; None: the default.
    link_metadata_template: Any = None
    #: The PaymentIntent template of ``payment-intent``; None: :data:`DEFAULT_INTENT`.
    intent_template: Any = None
    #: The endpoint's subscription (``[target.webhook] events``): () sends every type.
    webhook_events: tuple[str, ...] = ()
    #: Runs once per buyer before the buyer pays ($1 event, $2 ticket type, $3 buyer
    #: number, $4 quantity, $5 email, $6 name, $7 product, $8 price, $9 payment link);
    #: a returned row's columns become template names. "": none.
    fixture_buyer_sql: str = ""

    def subscribed(self, event_type: str) -> bool:
        """Is the webhook endpoint subscribed to ``event_type`` (as in Stripe's dashboard)?"""
        return not self.webhook_events or "*" in self.webhook_events or \
            event_type in self.webhook_events
    #: What the target promises (``[promises]``): which built-in invariants it is held to.
    promises: Promises = field(default_factory=Promises)
    #: The Checkout Session metadata key whose value is the example's event id: how the
    #: tool finds the sessions of an example at the fake Stripe (besides the sessions the
    #: target's own recorded calls created); on ``payment-intent``, the PaymentIntents'.
    session_metadata_key: str = "event_id"

    def checkout_headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        """The headers of a checkout request, as the seed's client sends them."""
        headers = {"content-type": "application/json"}
        if self.checkout_extra_headers is None:
            headers.update({"apikey": self.anon_key, "authorization": f"Bearer {self.anon_key}"})
        else:
            headers.update(self.checkout_extra_headers)
        if idempotency_key is not None and self.idempotency_header:
            headers[self.idempotency_header] = idempotency_key
        return headers

    def checkout_body(self, values: Mapping[str, Any]) -> Any:
        return render_body(DEFAULT_BODY if self.body_template is None else self.body_template,
                           values)

    def __repr__(self) -> str:  # never print the secret or the key
        return f"Target(base_url={self.base_url!r}, webhook_path={self.webhook_path!r})"
