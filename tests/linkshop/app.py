"""The link shop: Starlette + asyncpg + the real ``stripe`` package, webhook only.

It sells through Stripe Payment Links, so it has no checkout door. An admin
lists each ticket type with the id of its Stripe Product
(``ticket_types.stripe_product_id``); a session's ``client_reference_id`` (a
cart a browser checkout made) is kept on the order. Its one door is

- ``POST /{event}/stripe/webhook/`` (the event's id in the path, as a site
  with one endpoint per event has it): ``stripe.Webhook.construct_event``
  (300 s); then it handles ``checkout.session.completed`` and
  ``checkout.session.async_payment_succeeded`` by retrieving the session
  with ``expand=["line_items", "line_items.data.price.product"]`` (never
  trusting the event's snapshot), finding each line item's ticket type by
  its product id, and reading the buyer from ``customer_details.email``.
  Any other event type answers ``400 unknown event`` (subscribe the endpoint
  to those it handles). A session that is not paid yet is acknowledged and
  left alone; its delayed success fulfils it.

  Its Elements card form (``tests/linkshop/elements.toml``) sells without a
  session: a PaymentIntent carrying the ticket type's product id and the
  quantity in its metadata, the buyer's email as ``receipt_email``. The
  webhook handles ``payment_intent.succeeded`` by retrieving the intent
  (never the snapshot) and fulfilling it like a session, keyed by the
  intent's id; an intent without a product (a Checkout Session's) is
  acknowledged and left to its session's events.

Fulfilment is one transaction: the order row (unique per Checkout Session:
a second delivery finds it and does nothing), a lock on the ticket type,
the tickets. When the ticket type is sold out (a Payment Link sells without
asking) the order is recorded as ``refunded`` and the payment refunded at
Stripe (one refund per session: ``Idempotency-Key``), before the commit, so a
failed refund is retried with the delivery.

``GET /healthz`` answers 200. Bug (``LINKSHOP_BUGS=no-dedup`` or ``--bug``):
``no-dedup``, no unique order per session, so every delivery of a
completion fulfils it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BUGS = ("no-dedup",)
TOLERANCE = 300
HANDLED = ("checkout.session.completed", "checkout.session.async_payment_succeeded",
           "payment_intent.succeeded")
EXPAND = ["line_items", "line_items.data.price.product"]


def ddl(bugs: frozenset[str]) -> str:
    unique = "" if "no-dedup" in bugs else " unique"
    return f"""
create table if not exists events (
    id serial primary key, code text unique, title text not null);
create table if not exists ticket_types (
    id serial primary key, event_id integer not null references events(id), code text,
    name text not null, price_cents integer not null, capacity integer not null,
    sold integer not null default 0 check (sold >= 0), stripe_product_id text unique);
create table if not exists orders (
    id serial primary key, event_id integer not null references events(id),
    stripe_session text not null{unique}, payment_intent text, email text not null,
    name text, client_reference text, state text not null,
    created_at timestamptz not null default now());
create table if not exists tickets (
    id serial primary key, order_id integer not null references orders(id),
    ticket_type_id integer not null references ticket_types(id),
    status text not null default 'valid');
create index if not exists tickets_type on tickets(ticket_type_id);
"""


def problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@dataclass
class LinkShop:
    database_url: str
    schema: str
    stripe_api_base: str
    stripe_api_key: str
    webhook_secret: str
    bugs: frozenset[str] = frozenset()
    pool_size: int = 20
    _pool: asyncpg.Pool | None = None
    _stripe: stripe.StripeClient | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "the link shop is not started"
        return self._pool

    @property
    def stripe(self) -> stripe.StripeClient:
        assert self._stripe is not None, "the link shop is not started"
        return self._stripe

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        self._pool = await asyncpg.create_pool(
            self.database_url, min_size=1, max_size=self.pool_size, command_timeout=10,
            server_settings={"search_path": self.schema})
        async with self._pool.acquire() as conn:
            await conn.execute(f'create schema if not exists "{self.schema}"')
            await conn.execute(ddl(self.bugs))
        self._stripe = stripe.StripeClient(
            self.stripe_api_key, base_addresses={"api": self.stripe_api_base},
            http_client=stripe.HTTPXClient(timeout=3), max_network_retries=2)
        try:
            yield
        finally:
            await self._pool.close()

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/{event}/stripe/webhook/", self.webhook, methods=["POST"]),
            Route("/healthz", self.health, methods=["GET"]),
        ], lifespan=self.lifespan)

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "service": "linkshop"})

    async def webhook(self, request: Request) -> JSONResponse:
        payload = await request.body()
        header = request.headers.get("stripe-signature")
        if not header:
            return problem(400, "no Stripe-Signature header")
        try:
            event = stripe.Webhook.construct_event(payload, header, self.webhook_secret,
                                                   tolerance=TOLERANCE)
            kind, session_id = event["type"], event["data"]["object"]["id"]
        except stripe.SignatureVerificationError as exc:
            return problem(400, f"signature refused: {exc.user_message or exc}")
        except (ValueError, KeyError, TypeError, AttributeError):
            return problem(400, "the payload is not a Stripe event (id, type, data.object)")
        if kind not in HANDLED:
            return problem(400, f"unknown event {kind}")
        event_ref = request.path_params["event"]
        if not event_ref.isdigit() or not await self.pool.fetchval(
                "select true from events where id = $1", int(event_ref)):
            return problem(404, f"no event {event_ref}")
        if kind == "payment_intent.succeeded":
            return await self.intent_paid(int(event_ref), session_id)
        try:  # the session as Stripe holds it now, with what was bought
            session = (await self.stripe.v1.checkout.sessions.retrieve_async(
                session_id, params={"expand": EXPAND})).to_dict()
        except stripe.StripeError as exc:
            return problem(502, f"Stripe did not answer the session lookup ({exc}); retry")
        if session.get("payment_status") != "paid":
            return JSONResponse({"received": True, "outcome": "not paid yet"})
        return JSONResponse({"received": True,
                             "outcome": await self.fulfil(int(event_ref), session)})

    async def intent_paid(self, event_id: int, intent_id: str) -> JSONResponse:
        """An Elements purchase: the PaymentIntent as Stripe holds it now, fulfilled as
        a one-line cart of the product its metadata names."""
        try:
            intent = (await self.stripe.v1.payment_intents.retrieve_async(intent_id)).to_dict()
        except stripe.StripeError as exc:
            return problem(502, f"Stripe did not answer the PaymentIntent lookup ({exc}); retry")
        meta = intent.get("metadata") or {}
        if not meta.get("product_id"):
            return JSONResponse({"received": True, "outcome": "not an Elements purchase"})
        if intent.get("status") != "succeeded":
            return JSONResponse({"received": True, "outcome": "not paid yet"})
        cart = {"id": intent["id"], "payment_intent": intent["id"],
                "customer_details": {"email": intent.get("receipt_email")},
                "line_items": {"data": [{"price": {"product": {"id": meta["product_id"]}},
                                         "quantity": int(meta.get("quantity") or 1)}]}}
        return JSONResponse({"received": True, "outcome": await self.fulfil(event_id, cart)})

    async def fulfil(self, event_id: int, session: dict[str, Any]) -> str:
        details = session.get("customer_details") or {}
        email = details.get("email")
        if not email:
            return "no buyer email"
        async with self.pool.acquire() as conn, conn.transaction():
            conflict = "" if "no-dedup" in self.bugs else " on conflict (stripe_session) do nothing"
            order = await conn.fetchval(
                "insert into orders (event_id, stripe_session, payment_intent, email, name, "
                f"client_reference, state) values ($1, $2, $3, $4, $5, $6, 'paid'){conflict} "
                "returning id", event_id, session["id"], session.get("payment_intent"), email,
                details.get("name"), session.get("client_reference_id"))
            if order is None:
                return "already fulfilled"
            wanted = []
            for item in session["line_items"]["data"]:
                product = item["price"]["product"]
                row = await conn.fetchrow(
                    "select id, capacity, sold from ticket_types where stripe_product_id = $1 "
                    "and event_id = $2 for update", product["id"], event_id)
                if row is None:
                    raise LookupError(f"no ticket type sells product {product['id']}")
                wanted.append((row, int(item["quantity"])))
            if any(row["sold"] + quantity > row["capacity"] for row, quantity in wanted):
                await conn.execute("update orders set state = 'refunded' where id = $1", order)
                try:
                    await self.stripe.v1.refunds.create_async(
                        params={"payment_intent": session["payment_intent"],
                                "reason": "requested_by_customer"},
                        options={"idempotency_key": f"linkshop-sold-out-{session['id']}"})
                except stripe.InvalidRequestError as exc:
                    if exc.code != "charge_already_refunded":  # refunded already: as wanted
                        raise
                return "sold out: refunded"
            for row, quantity in wanted:
                await conn.execute("update ticket_types set sold = sold + $2 where id = $1",
                                   row["id"], quantity)
                await conn.executemany(
                    "insert into tickets (order_id, ticket_type_id) values ($1, $2)",
                    [(order, row["id"])] * quantity)
        return "fulfilled"
