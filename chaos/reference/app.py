"""The reference ticketing service: the seed's API, written the way a careful
team would, with the catalogue's bugs switchable by name (``bugs.py``).

Doors (each in its own module):
- ``POST /functions/v1/create-checkout-session`` (``checkout.py``): prices from
  the database, holds capacity, honours ``Idempotency-Key``, creates the
  Checkout Session through the real ``stripe`` client.
- ``POST /functions/v1/stripe-webhook`` (``webhook.py``): verifies, dedups and
  handles Stripe's events in any order, any number of times.
- ``GET /_chaos/health``, ``GET /_chaos/metrics`` (``in_flight``,
  ``peak_in_flight``, ``requests``), ``POST /_chaos/metrics/reset``: what the
  tester reads to measure the concurrency the service really saw.

Every answer is JSON; a database failure is a 503 and an unexpected
constraint violation a 500, each one line, never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaos.reference.checkout import CheckoutDoor
from chaos.reference.schema import ddl
from chaos.reference.service import Service, error, log
from chaos.reference.webhook import WebhookDoor
from chaos.target import DEFAULT_ANON_KEY


class InFlight:
    """ASGI middleware counting requests in flight (a background task of a
    request counts until it ends), and the peak."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.peak = 0
        self.total = 0

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
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


Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(endpoint: Endpoint) -> Endpoint:
    """Database failures as one-line JSON answers: 500 for a constraint that
    refused a write (a bug in the service), 503 for everything else (retry)."""

    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except asyncpg.IntegrityConstraintViolationError as exc:
            log.error("a database constraint refused a write", path=request.url.path,
                      error=type(exc).__name__, detail=str(exc)[:200])
            return error(500, f"internal error: {type(exc).__name__}")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.warning("database unavailable", path=request.url.path,
                        error=type(exc).__name__, detail=str(exc)[:200])
            return error(503, "the database is unavailable: retry in a moment")

    return run


def create_app(*, database_url: str, schema: str, webhook_secret: str,
               bugs: frozenset[str] = frozenset(), stripe_api_base: str = "http://127.0.0.1:12111",
               stripe_api_key: str = "sk_test_chaos", anon_key: str = DEFAULT_ANON_KEY,
               pool_size: int = 20) -> InFlight:
    """The service as an ASGI app (wrapped in its in-flight meter)."""
    service = Service(bugs=bugs, webhook_secret=webhook_secret, anon_key=anon_key,
                      stripe_api_base=stripe_api_base, stripe_api_key=stripe_api_key,
                      schema=schema, database_url=database_url, pool_size=pool_size)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start(ddl(bugs))
        try:
            yield
        finally:
            await service.stop()

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
            Route("/functions/v1/create-checkout-session", guarded(CheckoutDoor(service)),
                  methods=["POST"]),
            Route("/functions/v1/stripe-webhook", guarded(WebhookDoor(service)),
                  methods=["POST"]),
            Route("/_chaos/health", health, methods=["GET"]),
            Route("/_chaos/metrics", metrics, methods=["GET"]),
            Route("/_chaos/metrics/reset", reset_metrics, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    meter = InFlight(app)
    return meter
