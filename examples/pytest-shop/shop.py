"""A small ticket shop, as a team would write it: the service the example's tests test.

``POST /orders`` ``{"quantity": N, "ticket_type": ID}`` holds N units of the ticket
type (``ga`` unless named; 409 when it is sold out), creates a Stripe Checkout Session
at the database's price and an order row; ``POST /webhook`` verifies Stripe's
signature, then, once per event id, issues the tickets of a paid order
(``checkout.session.completed``) or voids them (``charge.refunded``; a refund that
arrives before the completion is remembered, so the completion issues nothing).

Configured from the environment: ``DATABASE_URL`` and ``SHOP_SCHEMA`` (PostgreSQL),
``STRIPE_API_BASE``, ``STRIPE_SECRET_KEY``, ``STRIPE_WEBHOOK_SECRET``.
``SHOP_BUG=no-dedup`` switches on the bug the example's tests must catch: every
delivery is processed, so Stripe's redelivery of an event issues a second ticket set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping

import asyncpg
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PRICE_CENTS = 2500

SCHEMA_SQL = """
create table if not exists ticket_types (
    id text primary key,
    event text not null,
    price_cents int not null,
    capacity int not null,
    held int not null default 0
);
insert into ticket_types (id, event, price_cents, capacity)
    values ('ga', 'shop', 2500, 1000000) on conflict do nothing;
create table if not exists orders (
    id serial primary key,
    event text not null default 'shop',
    ticket_type text not null default 'ga' references ticket_types(id),
    quantity int not null,
    session_id text unique not null,
    payment_intent text,
    status text not null default 'open'
);
create table if not exists tickets (
    id serial primary key,
    order_id int not null references orders(id),
    status text not null default 'valid'
);
create table if not exists stripe_events (id text primary key);
create table if not exists refunded_payments (payment_intent text primary key);
"""


def create_app(env: Mapping[str, str] = os.environ) -> Starlette:
    """The shop as an ASGI app, configured from ``env`` (the process environment)."""
    bug = env.get("SHOP_BUG", "")
    stripe_client = stripe.StripeClient(
        env["STRIPE_SECRET_KEY"], base_addresses={"api": env["STRIPE_API_BASE"]},
        http_client=stripe.HTTPXClient(timeout=5), max_network_retries=0)
    secret = env["STRIPE_WEBHOOK_SECRET"]
    pool: asyncpg.Pool | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        schema = env.get("SHOP_SCHEMA", "public")
        pool = await asyncpg.create_pool(env["DATABASE_URL"], min_size=1, max_size=4,
                                         server_settings={"search_path": schema})
        async with pool.acquire() as con:
            await con.execute(SCHEMA_SQL)
        try:
            yield
        finally:
            await pool.close()

    async def create_order(request: Request) -> JSONResponse:
        body = await request.json()
        quantity, kind = int(body["quantity"]), str(body.get("ticket_type", "ga"))
        assert pool is not None
        held = await pool.fetchrow(
            "update ticket_types set held = held + $2 where id = $1 and held + $2 <= capacity "
            "returning event, price_cents", kind, quantity)
        if held is None:
            known = await pool.fetchval("select 1 from ticket_types where id = $1", kind)
            return JSONResponse({"error": "sold out" if known else "no such ticket type"},
                                409 if known else 404)
        try:
            session = await stripe_client.v1.checkout.sessions.create_async(params={
                "mode": "payment", "success_url": "http://127.0.0.1/thanks",
                "metadata": {"event_id": held["event"], "ticket_type_id": kind,
                             "quantity": str(quantity)},
                "line_items": [{"quantity": quantity, "price_data": {
                    "currency": "usd", "unit_amount": held["price_cents"],
                    "product_data": {"name": "Shop ticket"}}}]})
        except stripe.StripeError as exc:
            await pool.execute("update ticket_types set held = held - $2 where id = $1",
                               kind, quantity)
            return JSONResponse({"error": f"Stripe failed: {exc.user_message or exc}"}, 502)
        order_id = await pool.fetchval(
            "insert into orders (event, ticket_type, quantity, session_id) "
            "values ($1, $2, $3, $4) returning id", held["event"], kind, quantity, session.id)
        return JSONResponse({"order": order_id, "session": session.id, "url": session.url})

    async def webhook(request: Request) -> JSONResponse:
        payload = await request.body()
        try:
            event = stripe.Webhook.construct_event(
                payload.decode(), request.headers.get("stripe-signature", ""), secret)
        except (ValueError, stripe.SignatureVerificationError):
            return JSONResponse({"error": "bad signature"}, 400)
        obj = event["data"]["object"]
        assert pool is not None
        async with pool.acquire() as con, con.transaction():
            if bug != "no-dedup":
                first = await con.fetchval("insert into stripe_events (id) values ($1) "
                                           "on conflict do nothing returning id", event["id"])
                if first is None:
                    return JSONResponse({"duplicate": True})
            intent = obj["payment_intent"] if "payment_intent" in obj else None
            if intent:                      # one payment's events, one at a time
                await con.execute("select pg_advisory_xact_lock(hashtext($1))", intent)
            if event["type"] == "checkout.session.completed" and obj["payment_status"] == "paid":
                refunded = await con.fetchval("select 1 from refunded_payments "
                                              "where payment_intent = $1", obj["payment_intent"])
                order = await con.fetchrow(
                    "update orders set status = $3, payment_intent = $2 "
                    "where session_id = $1 returning id, quantity", obj["id"],
                    obj["payment_intent"], "refunded" if refunded else "paid")
                if order is not None and not refunded:
                    await con.execute("insert into tickets (order_id) "
                                      "select $1 from generate_series(1, $2)",
                                      order["id"], order["quantity"])
            elif event["type"] == "charge.refunded" and obj["refunded"]:
                await con.execute("insert into refunded_payments values ($1) "
                                  "on conflict do nothing", obj["payment_intent"])
                await con.execute(
                    "update orders set status = 'refunded' where payment_intent = $1",
                    obj["payment_intent"])
                await con.execute(
                    "update tickets set status = 'void' where order_id in "
                    "(select id from orders where payment_intent = $1)", obj["payment_intent"])
        return JSONResponse({"received": True})

    return Starlette(lifespan=lifespan, routes=[
        Route("/orders", create_order, methods=["POST"]),
        Route("/webhook", webhook, methods=["POST"]),
    ])
