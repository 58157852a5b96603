"""A small ticket shop, as a team would write it: the service the example's tests test.

``POST /orders`` ``{"quantity": N}`` creates a Stripe Checkout Session for N tickets
and an order row; ``POST /webhook`` verifies Stripe's signature, then, once per
event id, issues the tickets of a paid order (``checkout.session.completed``) or
voids them (``charge.refunded``).

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
create table if not exists orders (
    id serial primary key,
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
"""


def create_app(env: Mapping[str, str] = os.environ) -> Starlette:
    """The shop as an ASGI app, configured from ``env`` (the process environment)."""
    bug = env.get("SHOP_BUG", "")
    stripe_client = stripe.StripeClient(
        env["STRIPE_SECRET_KEY"], base_addresses={"api": env["STRIPE_API_BASE"]},
        http_client=stripe.HTTPXClient(), max_network_retries=0)
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
        quantity = int((await request.json())["quantity"])
        try:
            session = await stripe_client.v1.checkout.sessions.create_async(params={
                "mode": "payment", "success_url": "http://127.0.0.1/thanks",
                "line_items": [{"quantity": quantity, "price_data": {
                    "currency": "usd", "unit_amount": PRICE_CENTS,
                    "product_data": {"name": "Shop ticket"}}}]})
        except stripe.StripeError as exc:
            return JSONResponse({"error": f"Stripe failed: {exc.user_message or exc}"}, 502)
        assert pool is not None
        order_id = await pool.fetchval(
            "insert into orders (quantity, session_id) values ($1, $2) returning id",
            quantity, session.id)
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
            if event["type"] == "checkout.session.completed" and obj["payment_status"] == "paid":
                order = await con.fetchrow(
                    "update orders set status = 'paid', payment_intent = $2 "
                    "where session_id = $1 returning id, quantity", obj["id"], obj["payment_intent"])
                if order is not None:
                    await con.execute("insert into tickets (order_id) "
                                      "select $1 from generate_series(1, $2)",
                                      order["id"], order["quantity"])
            elif event["type"] == "charge.refunded" and obj["refunded"]:
                await con.execute(
                    "update tickets set status = 'void' where order_id in "
                    "(select id from orders where payment_intent = $1)", obj["payment_intent"])
        return JSONResponse({"received": True})

    return Starlette(lifespan=lifespan, routes=[
        Route("/orders", create_order, methods=["POST"]),
        Route("/webhook", webhook, methods=["POST"]),
    ])
