"""The reference ticketing service: the seed's API, written the way a careful
team would, with the catalogue's bugs switchable by name.

Doors:
- ``POST /functions/v1/stripe-webhook``: verifies ``Stripe-Signature`` with
  ``stripe.Webhook.construct_event`` (300 s tolerance) and fulfils
  ``checkout.session.completed``: one order and one ticket per unit bought.
- ``GET /_chaos/health``, ``GET /_chaos/metrics``, ``POST /_chaos/metrics/reset``:
  what the tester reads to measure the concurrency the service really saw.
"""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chaos.reference.schema import ddl


class InFlight:
    """ASGI middleware counting requests in flight, and the peak."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.peak = 0
        self.total = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_chaos/"):
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1

    def reset(self) -> None:
        self.peak = self.now
        self.total = 0


def create_app(*, database_url: str, schema: str, webhook_secret: str,
               bugs: frozenset[str] = frozenset(), stripe_api_base: str = "http://127.0.0.1:12111",
               stripe_api_key: str = "sk_test_chaos") -> InFlight:
    pool: asyncpg.Pool | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app):
        nonlocal pool
        pool = await asyncpg.create_pool(
            database_url, min_size=2, max_size=20,
            server_settings={"search_path": schema},
        )
        async with pool.acquire() as conn:
            await conn.execute(f'create schema if not exists "{schema}"')
            await conn.execute(ddl(bugs))
        try:
            yield
        finally:
            await pool.close()

    async def stripe_webhook(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            event = stripe.Webhook.construct_event(
                body, request.headers.get("stripe-signature"), webhook_secret
            )
        except ValueError:
            return JSONResponse({"error": "invalid payload"}, status_code=400)
        except stripe.SignatureVerificationError:
            return JSONResponse({"error": "invalid signature"}, status_code=400)

        if event["type"] != "checkout.session.completed":
            return JSONResponse({"received": True, "ignored": event["type"]})
        session = event["data"]["object"]
        if session["payment_status"] != "paid":
            return JSONResponse({"received": True, "ignored": "unpaid"})

        assert pool is not None
        async with pool.acquire() as conn, conn.transaction():
            if "no-dedup" not in bugs:
                first = await conn.fetchval(
                    "insert into processed_webhook_events (event_id, type) values ($1, $2) "
                    "on conflict do nothing returning event_id",
                    event["id"], event["type"],
                )
                if first is None:
                    return JSONResponse({"received": True, "duplicate": True})
            await fulfil(conn, session)
        return JSONResponse({"received": True})

    async def fulfil(conn: asyncpg.Connection, session: Any) -> None:
        """One order per checkout session, one ticket per unit bought."""
        meta = session["metadata"]
        quantity = int(meta["quantity"])
        values = (meta["event_id"], meta["ticket_type_id"], quantity, session["id"],
                  session["payment_intent"], session["customer_email"], session["amount_total"])
        insert = ("insert into orders (event_id, ticket_type_id, quantity, stripe_session_id, "
                  "payment_intent_id, customer_email, amount_cents, status) "
                  "values ($1, $2, $3, $4, $5, $6, $7, 'paid')")
        if "no-dedup" in bugs:
            order_id = await conn.fetchval(insert + " returning id", *values)
        else:
            order_id = await conn.fetchval(
                insert + " on conflict (stripe_session_id) do nothing returning id", *values
            )
            if order_id is None:
                return  # fulfilled already, by another event of the same session
        await conn.executemany(
            "insert into tickets (order_id, ticket_type_id) values ($1, $2)",
            [(order_id, meta["ticket_type_id"])] * quantity,
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "service": "reference", "bugs": sorted(bugs)})

    async def metrics(request: Request) -> JSONResponse:
        return JSONResponse({"in_flight": meter.now, "peak_in_flight": meter.peak,
                             "requests": meter.total})

    async def reset_metrics(request: Request) -> JSONResponse:
        meter.reset()
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/functions/v1/stripe-webhook", stripe_webhook, methods=["POST"]),
            Route("/_chaos/health", health, methods=["GET"]),
            Route("/_chaos/metrics", metrics, methods=["GET"]),
            Route("/_chaos/metrics/reset", reset_metrics, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    meter = InFlight(app)
    return meter
