"""The seed's two Supabase edge functions, ported step for step to Python, to play
the service the seed was written for: ``python -m tests.seed_functions --port 0
--database-url URL --schema S --stripe-api-base URL [--fixed]``.

They run over ``examples/supabase/schema.sql`` (uuid ids) and talk to the database
one statement at a time, as supabase-js does through PostgREST: no transaction
spans two calls. What they do is what issue 21 records of the originals:

- ``POST /functions/v1/create-checkout-session``: ``{eventId, tickets:
  [{ticketTypeId, quantity}], customerEmail, customerName, totalAmount,
  successUrl, cancelUrl}``; every line priced through ``rpc
  get_current_tier_price``; an order inserted ``pending``; a Checkout Session
  with metadata ``{orderId, eventId, customerEmail, customerName, tickets}``;
  ``orders.payment_reference`` set to its id; answers ``{sessionId, url}``. No
  ``Idempotency-Key``. With ``SUPABASE_ANON_KEY`` set it checks ``apikey`` and
  ``Authorization: Bearer`` as the gateway does.
- ``POST /functions/v1/stripe-webhook``: ``rpc check_webhook_idempotency(event.id,
  'stripe')`` before the signature (an error there is logged and the event
  processed anyway), the HMAC checked by hand with no timestamp tolerance, the
  order set ``paid``, one ``tickets`` row per unit, ``rpc
  update_webhook_idempotency``; then it answers **500** (the ``.catch`` on a query
  builder that has none throws after the last write). ``--fixed`` patches that one
  line: it answers 200.

Secrets from the environment: ``STRIPE_WEBHOOK_SECRET`` (whsec_...),
``STRIPE_SECRET_KEY`` (sk_test_..., default a test key). It prints ``listening on
http://127.0.0.1:PORT`` once it serves, and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import stripe
from aiohttp import web


class SeedFunctions:
    """Both functions over one pool; each query is its own statement (autocommit)."""

    def __init__(self, *, database_url: str, schema: str, stripe_api_base: str,
                 webhook_secret: str, stripe_key: str, anon_key: str, fixed: bool) -> None:
        self.database_url, self.schema = database_url, schema
        self.stripe_api_base, self.stripe_key = stripe_api_base, stripe_key
        self.webhook_secret, self.anon_key, self.fixed = webhook_secret, anon_key, fixed
        self.pool: asyncpg.Pool | None = None
        self.http: stripe.AIOHTTPClient | None = None
        self.stripe: stripe.StripeClient | None = None

    async def start(self, _: web.Application) -> Any:
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=20,
                                              command_timeout=10,
                                              server_settings={"search_path": self.schema})
        self.http = stripe.AIOHTTPClient(timeout=5)
        self.stripe = stripe.StripeClient(self.stripe_key,
                                          base_addresses={"api": self.stripe_api_base},
                                          http_client=self.http)
        yield
        await self.http.close_async()
        await self.pool.close()

    def app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(self.start)
        app.router.add_post("/functions/v1/create-checkout-session", self.checkout)
        app.router.add_post("/functions/v1/stripe-webhook", self.webhook)
        return app

    # ------------------------------------------------------------------ checkout
    async def checkout(self, request: web.Request) -> web.Response:
        assert self.pool is not None and self.stripe is not None
        if self.anon_key and (request.headers.get("apikey") != self.anon_key or
                              request.headers.get("Authorization") != f"Bearer {self.anon_key}"):
            return web.json_response({"message": "Invalid JWT"}, status=401)
        try:
            body = json.loads(await request.read())
            event_id = uuid.UUID(str(body["eventId"]))
            lines = [(uuid.UUID(str(t["ticketTypeId"])), int(t["quantity"])) for t in body["tickets"]]
            email, name = str(body["customerEmail"]), str(body.get("customerName") or "")
            success_url, cancel_url = str(body["successUrl"]), str(body["cancelUrl"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "Missing required fields"}, status=400)
        event = await self.pool.fetchrow("select id, name from events where id = $1", event_id)
        if event is None:
            return web.json_response({"error": "Event not found"}, status=404)
        items = []
        for ticket_type_id, quantity in lines:
            tt = await self.pool.fetchrow(
                "select id, name, price, fee, status from ticket_types where id = $1 "
                "and event_id = $2", ticket_type_id, event_id)
            if tt is None:
                return web.json_response({"error": "Ticket type not found"}, status=400)
            price: Decimal | None = await self.pool.fetchval(
                "select get_current_tier_price($1)", ticket_type_id)
            if price is None:
                return web.json_response({"error": "Ticket type not on sale"}, status=400)
            items.append({"quantity": quantity, "price_data": {
                "currency": "usd", "unit_amount": int(round(price * 100)),
                "product_data": {"name": tt["name"]}}})
        order_id = await self.pool.fetchval(
            "insert into orders (event_id, customer_email, customer_name, total_amount, status) "
            "values ($1, $2, $3, $4, 'pending') returning id",
            event_id, email, name, Decimal(str(body.get("totalAmount") or 0)) / 100)
        tickets = [{"ticketTypeId": str(t), "quantity": q} for t, q in lines]
        try:
            session = await self.stripe.v1.checkout.sessions.create_async(params={
                "mode": "payment", "line_items": items,  # type: ignore[typeddict-item]
                "customer_email": email, "success_url": success_url, "cancel_url": cancel_url,
                "metadata": {"orderId": str(order_id), "eventId": str(event_id),
                             "customerEmail": email, "customerName": name,
                             "tickets": json.dumps(tickets)}})
        except stripe.StripeError as exc:
            return web.json_response({"error": str(exc.user_message or exc)}, status=500)
        await self.pool.execute("update orders set payment_reference = $2 where id = $1",
                                order_id, session.id)
        return web.json_response({"sessionId": session.id, "url": session.url})

    # ------------------------------------------------------------------- webhook
    async def webhook(self, request: web.Request) -> web.Response:
        assert self.pool is not None
        payload = await request.read()
        try:
            event = json.loads(payload)
            event_id, kind, obj = str(event["id"]), str(event["type"]), event["data"]["object"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "Invalid payload"}, status=400)
        try:  # the idempotency check, before the signature; an error fails open
            [check] = await self.pool.fetch(
                "select * from check_webhook_idempotency($1, 'stripe')", event_id)
            if check["is_duplicate"]:
                return web.json_response({"received": True, "duplicate": True})
        except asyncpg.PostgresError as exc:
            print(f"idempotency check failed, processing anyway: {exc}", file=sys.stderr)
        if not self._signed(payload, request.headers.get("stripe-signature", "")):
            return web.json_response({"error": "Invalid signature"}, status=400)
        try:
            if kind == "checkout.session.completed":
                meta = obj.get("metadata") or {}
                order_id = uuid.UUID(meta["orderId"])
                await self.pool.execute("update orders set status = 'paid' where id = $1", order_id)
                for line in json.loads(meta.get("tickets") or "[]"):
                    for _ in range(int(line["quantity"])):
                        await self.pool.execute(
                            "insert into tickets (order_id, ticket_type_id, status) "
                            "values ($1, $2, 'issued')", order_id, uuid.UUID(line["ticketTypeId"]))
            await self.pool.execute(
                "select update_webhook_idempotency($1, 'stripe', 'processed', $2::jsonb)",
                event_id, json.dumps({"type": kind}))
            if not self.fixed:  # `.catch` is not a function of the query builder
                raise TypeError("supabase.from(...).update(...).eq(...).catch is not a function")
        except (TypeError, ValueError, KeyError, asyncpg.PostgresError) as exc:
            return web.json_response({"error": f"Webhook handler failed: {exc}"}, status=500)
        return web.json_response({"received": True})

    def _signed(self, payload: bytes, header: str) -> bool:
        """``t=...,v1=...`` checked by hand: HMAC-SHA256 of ``t.payload``; no tolerance."""
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        if "t" not in parts or "v1" not in parts:
            return False
        expected = hmac.new(self.webhook_secret.encode(), f"{parts['t']}.".encode() + payload,
                            hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])


async def serve(functions: SeedFunctions, port: int) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    runner = web.AppRunner(functions.app(), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=4096).start()
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.seed_functions")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--stripe-api-base", required=True)
    parser.add_argument("--fixed", action="store_true", help="answer 200 once the work is done")
    args = parser.parse_args()
    secret = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
    key = os.environ.get("STRIPE_SECRET_KEY", "sk_test_seed_functions")
    if not secret.startswith("whsec_") or not key.startswith("sk_test_"):
        parser.error("STRIPE_WEBHOOK_SECRET must be whsec_... and STRIPE_SECRET_KEY sk_test_...")
    functions = SeedFunctions(database_url=args.database_url, schema=args.schema,
                              stripe_api_base=args.stripe_api_base.rstrip("/"),
                              webhook_secret=secret, stripe_key=key,
                              anon_key=os.environ.get("SUPABASE_ANON_KEY", ""), fixed=args.fixed)
    asyncio.run(serve(functions, args.port))


if __name__ == "__main__":
    main()
